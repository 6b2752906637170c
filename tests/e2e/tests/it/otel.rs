//! The OpenTelemetry export of one order: the six processes run as separate processes with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a small OTLP/HTTP receiver this test runs on
//! 127.0.0.1 (protobuf, decoded with `opentelemetry-proto`). One order is placed and shipped, the
//! processes are stopped with SIGTERM (each exports its last spans before it exits), and the
//! order's spans must make one tree: one root (the checkout request), no orphan, spans of all
//! six services, every worker's handling the child of the relay's publish of its event, each
//! handling with its SQL statements and outbound calls (Stripe, the partner, SMTP) under it.
//! The batch schedule delay (`OTEL_BSP_SCHEDULE_DELAY`) is an hour: no span leaves before the
//! processes stop, so the tree also proves that SIGTERM exports every span — and the test never
//! waits for a schedule, only for the processes to exit.
//!
//! The same for a worker under Lambda: its invocation's spans have left when it answers.
//!
//! The tree is printed (`--nocapture`) and written to `<target>/tmp/otel-span-tree.txt`.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::post,
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{KeyValue, any_value::Value as AnyValue},
};
use prost::Message;
use testkit::{lambda_api, processes::PIPELINE};

use crate::trace::{checkout_and_ship, stack_with};

/// `SPAN_KIND_SERVER`, `_PRODUCER`, `_CONSUMER` of the OTLP protocol.
const SERVER: i32 = 2;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

/// A batch schedule delay (ms) no test reaches: spans leave only on shutdown or flush.
const ONLY_AT_EXIT: &str = "3600000";

/// One received span, flattened.
#[derive(Debug, Clone)]
struct Collected {
    service: String,
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    kind: i32,
    attributes: Vec<String>,
    start: u64,
    end: u64,
}

type Received = Arc<Mutex<Vec<Collected>>>;

/// Serves `POST /v1/traces` on a free loopback port; the spans it received.
async fn receiver() -> (u16, Received) {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/traces", post(export))
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("receiver port");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, received)
}

async fn export(State(received): State<Received>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.unwrap_or_default().attributes;
        let service = string_attribute(&resource, "service.name").unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            spans.push(Collected {
                service: service.clone(),
                trace_id: hex::encode(&span.trace_id),
                span_id: hex::encode(&span.span_id),
                parent: hex::encode(&span.parent_span_id),
                name: span.name,
                kind: span.kind,
                attributes: span.attributes.into_iter().map(|kv| kv.key).collect(),
                start: span.start_time_unix_nano,
                end: span.end_time_unix_nano,
            });
        }
    }
    received.lock().expect("spans").extend(spans);
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        answer,
    )
        .into_response()
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

/// Places an order (no `traceparent`: the checkout starts the trace) and waits until it is
/// shipped and its four e-mails are sent; its trace id.
async fn place_and_ship(web: &str, pool: &sqlx::PgPool) -> String {
    let (_, traceparent) = checkout_and_ship(web, pool, None).await;
    traceparent.split('-').nth(1).expect("trace id").to_owned()
}

/// The spans of one trace, by id, with their children (by start time).
struct Tree {
    spans: HashMap<String, Collected>,
    children: HashMap<String, Vec<String>>,
}

impl Tree {
    fn of(spans: Vec<Collected>) -> Self {
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        let mut sorted = spans.clone();
        sorted.sort_by_key(|s| s.start);
        for span in &sorted {
            children
                .entry(span.parent.clone())
                .or_default()
                .push(span.span_id.clone());
        }
        Tree {
            spans: spans.into_iter().map(|s| (s.span_id.clone(), s)).collect(),
            children,
        }
    }

    fn parent(&self, span: &Collected) -> Option<&Collected> {
        self.spans.get(&span.parent)
    }

    fn descendants(&self, id: &str) -> Vec<&Collected> {
        let mut found = Vec::new();
        let mut stack = vec![id.to_owned()];
        while let Some(next) = stack.pop() {
            for child in self.children.get(&next).into_iter().flatten() {
                found.push(&self.spans[child]);
                stack.push(child.clone());
            }
        }
        found
    }

    /// Indented `name [service] (ms)` lines, children under their parent in start order.
    fn render(&self, id: &str, depth: usize, out: &mut String) {
        let span = &self.spans[id];
        let ms = span.end.saturating_sub(span.start) as f64 / 1e6;
        out.push_str(&format!(
            "{}{} [{}] ({ms:.1} ms)\n",
            "  ".repeat(depth),
            span.name,
            span.service
        ));
        for child in self.children.get(id).into_iter().flatten() {
            self.render(child, depth + 1, out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_orders_spans_across_the_six_processes_make_one_tree() {
    let (port, received) = receiver().await;
    let mut stack = stack_with(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", ONLY_AT_EXIT.into()),
    ])
    .await;
    let trace_id = place_and_ship(&stack.web, &stack.pool).await;
    // SIGTERM: each process exports its remaining spans before it exits, so once they have all
    // exited every span of the order has been received. (The receiver keeps serving on the
    // runtime's other thread meanwhile.)
    tokio::task::block_in_place(|| stack.processes.stop());
    stack.stop.cancel();
    std::fs::remove_dir_all(&stack.logs).ok();

    let spans: Vec<Collected> = received
        .lock()
        .expect("spans")
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .cloned()
        .collect();
    let tree = Tree::of(spans);
    let roots: Vec<&Collected> = tree
        .spans
        .values()
        .filter(|s| s.parent.is_empty() || s.parent == "0000000000000000")
        .collect();
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    let root = roots[0];
    let mut printed = format!("trace {trace_id}: {} spans\n", tree.spans.len());
    tree.render(&root.span_id, 0, &mut printed);
    println!("{printed}");
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("otel-span-tree.txt");
    std::fs::write(&file, &printed).expect("tree file");

    assert_eq!(
        (root.service.as_str(), root.name.as_str(), root.kind),
        ("web-server", "POST /api/orders", SERVER),
        "the root is the checkout request"
    );
    let orphans: Vec<&Collected> = tree
        .spans
        .values()
        .filter(|s| s.span_id != root.span_id && tree.parent(s).is_none())
        .collect();
    assert!(
        orphans.is_empty(),
        "spans whose parent is missing: {orphans:#?}"
    );
    let services: BTreeSet<&str> = tree.spans.values().map(|s| s.service.as_str()).collect();
    for process in PIPELINE {
        assert!(
            services.contains(process),
            "no span of {process}: {services:?}"
        );
    }
    assert_handlings_hang_under_the_relays_publish(&tree, root);
    assert_each_hop_has_its_statements_and_calls(&tree, root);
}

/// Every worker's handling span is a consumer span whose parent is the relay's producer span for
/// that event, whose parent is the span that wrote the event (the checkout or a handling).
fn assert_handlings_hang_under_the_relays_publish(tree: &Tree, root: &Collected) {
    let handlings: Vec<&Collected> = tree.spans.values().filter(|s| s.kind == CONSUMER).collect();
    // order.placed → invoice, email; invoice.generated → billing, email;
    // payment.succeeded → shipping, email; shipment.created → email.
    assert!(handlings.len() >= 7, "{} handling spans", handlings.len());
    for handling in &handlings {
        let event_type = handling
            .name
            .strip_prefix("handle ")
            .expect("handle <event type>");
        let publish = tree.parent(handling).expect("a parent");
        assert_eq!(
            (
                publish.service.as_str(),
                publish.kind,
                publish.name.as_str()
            ),
            (
                "outbox-relay",
                PRODUCER,
                format!("publish {event_type}").as_str()
            ),
            "the parent of {} [{}]",
            handling.name,
            handling.service
        );
        let writer = tree.parent(publish).expect("the writer of the event");
        assert!(
            writer.span_id == root.span_id || writer.kind == CONSUMER,
            "{} was written by {} [{}]",
            publish.name,
            writer.name,
            writer.service
        );
    }
}

/// The checkout and each handling have SQL statement spans under them; the billing, shipping and
/// e-mail handlings their outbound calls.
fn assert_each_hop_has_its_statements_and_calls(tree: &Tree, root: &Collected) {
    let is_sql = |s: &&Collected| s.attributes.iter().any(|a| a == "db.system.name");
    assert!(
        tree.descendants(&root.span_id).iter().any(is_sql),
        "no SQL span under the checkout"
    );
    for handling in tree.spans.values().filter(|s| s.kind == CONSUMER) {
        let below = tree.descendants(&handling.span_id);
        assert!(
            below.iter().any(is_sql),
            "no SQL span under {} [{}]",
            handling.name,
            handling.service
        );
    }
    for (service, handled, call) in [
        ("billing-service", "handle invoice.generated", "stripe."),
        ("shipping-service", "handle payment.succeeded", "partner."),
        ("email-service", "handle order.placed", "smtp.send"),
    ] {
        let handling = tree
            .spans
            .values()
            .find(|s| s.service == service && s.name == handled)
            .unwrap_or_else(|| panic!("no {handled} span of {service}"));
        assert!(
            tree.descendants(&handling.span_id)
                .iter()
                .any(|s| s.name.starts_with(call)),
            "no {call}* call under {handled} [{service}]"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_invocation_exports_its_spans_before_it_answers() {
    let (port, received) = receiver().await;
    let db_url = testkit::fresh_database().await.expect("fresh database");
    let endpoint = testkit::test_settings(&[]).sqs.endpoint_url;
    let sqs = testkit::sqs_client(&endpoint).await;
    let queues = testkit::fresh_queues(&sqs).await.expect("fresh queues");
    let pool = testkit::pool(&db_url, 2).await.expect("pool");
    let mut placed = testkit::orders::insert_order(&pool).await.expect("order");
    // The envelope carries the writer's context, the message attribute the relay's publish span:
    // the attribute is the parent.
    let (trace_id, writer, publish) = (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        "b7ad6b7169203331",
    );
    placed.traceparent = format!("00-{trace_id}-{writer}-01");
    let message = sqs_transport::OutgoingMessage {
        entry_id: "m0".into(),
        body: serde_json::to_string(&placed).expect("json"),
        group_id: placed.order_id.to_string(),
        dedup_id: placed.event_id.to_string(),
        attributes: vec![("traceparent", format!("00-{trace_id}-{publish}-01"))],
    };
    sqs_transport::send_batch(&sqs, queues.url("invoice"), &[message])
        .await
        .expect("sent");
    let event = lambda_api::sqs_event_from_queue(&sqs, queues.url("invoice"), 1, "invoice.fifo")
        .await
        .expect("event");
    let mut env = testkit::worker_overrides(&db_url, &endpoint, &queues);
    env.extend([
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", ONLY_AT_EXIT.into()),
    ]);
    let binary = testkit::processes::binaries_dir().join("invoice-service");
    let binary = lambda_api::function_binary("invoice-service", &binary.to_string_lossy());
    let mut function = lambda_api::Function::start(&binary, &env)
        .await
        .expect("function process");
    let failures = function.invoke(event).await;
    // Read at once, before the process is stopped: only the invocation's flush can have sent them.
    let spans: Vec<Collected> = received.lock().expect("spans").clone();
    function.stop();

    assert!(failures.is_empty(), "{failures:?}");
    let handling = spans
        .iter()
        .find(|s| s.name == "handle order.placed")
        .unwrap_or_else(|| panic!("the handling span was exported before the answer: {spans:#?}"));
    assert_eq!(
        (handling.service.as_str(), handling.kind),
        ("invoice-service", CONSUMER)
    );
    assert_eq!(
        (handling.trace_id.as_str(), handling.parent.as_str()),
        (trace_id, publish),
        "the child of the message's traceparent attribute"
    );
    let tree = Tree::of(spans.clone());
    assert!(
        tree.descendants(&handling.span_id)
            .iter()
            .any(|s| s.attributes.iter().any(|a| a == "db.system.name")),
        "its SQL spans too"
    );
}
