//! The simulator's memory: shipments by id, idempotency keys, and request counters per
//! reference. Plain maps behind the caller's mutex; a restart forgets them all.

use std::collections::HashMap;

use serde::Serialize;

use crate::shipment::{IdempotencyKey, NewShipment, Shipment};

/// Counters of `POST /v1/shipments`, for one reference or for all.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    /// Shipments created (replays do not count).
    pub shipments_created: u64,
    /// Requests received, faulted, refused and replayed ones included.
    pub requests: u64,
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

/// Everything the simulator remembers.
#[derive(Debug, Default)]
pub struct Store {
    shipments: HashMap<String, Shipment>,
    keys: HashMap<IdempotencyKey, (NewShipment, String)>,
    by_reference: HashMap<String, Counts>,
    totals: Counts,
}

impl Store {
    /// Counts one request, under its reference when it could be read.
    pub fn count_request(&mut self, reference: Option<String>) {
        self.totals.requests += 1;
        if let Some(reference) = reference {
            self.by_reference.entry(reference).or_default().requests += 1;
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
}
