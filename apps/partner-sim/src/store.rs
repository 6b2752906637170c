//! The simulator's memory: shipments by id, idempotency keys, the delivery event of each
//! delivered shipment, and counters per reference. Plain maps behind the caller's mutex; a
//! restart forgets them all.

use std::collections::HashMap;

use chrono::Utc;
use serde::Serialize;

use crate::{
    delivery::Event,
    shipment::{IdempotencyKey, NewShipment, Shipment, Status},
};

/// Counters of what was asked, for one reference or for all.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    /// Shipments created (replays do not count).
    pub shipments_created: u64,
    /// Shipments cancelled (a repeated cancel does not count).
    pub shipments_cancelled: u64,
    /// `POST /v1/shipments` requests received, faulted, refused and replayed ones included.
    pub requests: u64,
}

/// Counters of callback attempts, in total only.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CallbackCounts {
    /// Attempts answered with a `2xx`.
    pub callbacks_sent: u64,
    /// Attempts answered otherwise, or not answered in time.
    pub callbacks_failed: u64,
}

/// What a create call did.
#[derive(Debug, Clone)]
pub enum Booking {
    /// A new shipment.
    Created(Shipment),
    /// The shipment first created under this key, for the same request.
    Replayed(Shipment),
    /// The key was first used with another request.
    KeyReused,
}

/// What a delivery did.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The shipment, now delivered.
    pub shipment: Shipment,
    /// Its `shipment.delivered` event, the same on every delivery of the shipment.
    pub event: Event,
    /// Whether this delivery moved the shipment to `delivered` (not one that already was).
    pub first: bool,
}

/// Why a shipment cannot be changed as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShipmentError {
    /// No shipment has this id.
    #[error("no shipment {0}")]
    NotFound(String),
    /// The shipment was delivered: it can no longer be cancelled.
    #[error("shipment {0} was already delivered")]
    AlreadyDelivered(String),
    /// The shipment was cancelled: it is never delivered.
    #[error("shipment {0} was cancelled")]
    Cancelled(String),
}

/// Everything the simulator remembers.
#[derive(Debug, Default)]
pub struct Store {
    shipments: HashMap<String, Shipment>,
    keys: HashMap<IdempotencyKey, (NewShipment, String)>,
    events: HashMap<String, Event>,
    by_reference: HashMap<String, Counts>,
    totals: Counts,
    callbacks: CallbackCounts,
}

impl Store {
    /// Counts one request, under its reference when it could be read.
    pub fn count_request(&mut self, reference: Option<String>) {
        self.totals.requests += 1;
        if let Some(reference) = reference {
            self.by_reference.entry(reference).or_default().requests += 1;
        }
    }

    /// Counts one callback attempt, answered with a `2xx` (`sent`) or not.
    pub fn count_callback(&mut self, sent: bool) {
        if sent {
            self.callbacks.callbacks_sent += 1;
        } else {
            self.callbacks.callbacks_failed += 1;
        }
    }

    /// Books `request` under `key`, or replays what the key already booked.
    pub fn book(&mut self, key: IdempotencyKey, request: NewShipment) -> Booking {
        if let Some((first, id)) = self.keys.get(&key) {
            return match self.shipments.get(id) {
                Some(shipment) if *first == request => Booking::Replayed(shipment.clone()),
                _ => Booking::KeyReused,
            };
        }
        let shipment = Shipment::book(&request);
        let counts = self.by_reference.entry(request.reference.clone());
        counts.or_default().shipments_created += 1;
        self.totals.shipments_created += 1;
        self.keys.insert(key, (request, shipment.id.clone()));
        self.shipments.insert(shipment.id.clone(), shipment.clone());
        Booking::Created(shipment)
    }

    /// The shipment with this id.
    pub fn shipment(&self, id: &str) -> Option<Shipment> {
        self.shipments.get(id).cloned()
    }

    /// Cancels the shipment `id`; cancelling it again answers the same shipment.
    ///
    /// # Errors
    /// [`ShipmentError::NotFound`], or [`ShipmentError::AlreadyDelivered`].
    pub fn cancel(&mut self, id: &str) -> Result<Shipment, ShipmentError> {
        let Some(shipment) = self.shipments.get_mut(id) else {
            return Err(ShipmentError::NotFound(id.to_owned()));
        };
        match shipment.status {
            Status::Cancelled => return Ok(shipment.clone()),
            Status::Delivered => return Err(ShipmentError::AlreadyDelivered(id.to_owned())),
            Status::Created => {}
        }
        shipment.status = Status::Cancelled;
        shipment.cancelled_at = Some(Utc::now());
        let counts = self.by_reference.entry(shipment.reference.clone());
        counts.or_default().shipments_cancelled += 1;
        self.totals.shipments_cancelled += 1;
        Ok(shipment.clone())
    }

    /// Delivers the shipment `id` and makes its event; delivering it again answers the same
    /// event.
    ///
    /// # Errors
    /// [`ShipmentError::NotFound`], or [`ShipmentError::Cancelled`].
    pub fn deliver(&mut self, id: &str) -> Result<Delivered, ShipmentError> {
        let Some(shipment) = self.shipments.get_mut(id) else {
            return Err(ShipmentError::NotFound(id.to_owned()));
        };
        let first = match shipment.status {
            Status::Cancelled => return Err(ShipmentError::Cancelled(id.to_owned())),
            Status::Delivered => false,
            Status::Created => true,
        };
        if first {
            shipment.status = Status::Delivered;
            shipment.delivered_at = Some(Utc::now());
        }
        let shipment = shipment.clone();
        let event = self
            .events
            .entry(id.to_owned())
            .or_insert_with(|| Event::delivered(&shipment))
            .clone();
        Ok(Delivered {
            shipment,
            event,
            first,
        })
    }

    /// The counters of one reference (zero when never seen), or the totals.
    pub fn counts(&self, reference: Option<&str>) -> Counts {
        match reference {
            Some(reference) => self
                .by_reference
                .get(reference)
                .copied()
                .unwrap_or_default(),
            None => self.totals,
        }
    }

    /// The callback counters.
    pub fn callback_counts(&self) -> CallbackCounts {
        self.callbacks
    }
}
