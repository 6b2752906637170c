//! The deployment template (`deploy/template.yaml`) has every queue, dead-letter queue and
//! function the code expects, wired the way the code needs. The expectations come from the code:
//! the consumers from `domain::Consumer::ALL`, queue names from `SqsSettings::queue_name` (and the
//! `-dlq` naming of `localstack/init/ready.d/create_queues.py`), binaries from `apps/*/Cargo.toml`.
//! Reads files only: no services needed.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::LazyLock,
};

use domain::Consumer;
use serde_norway::Value;
use settings::Settings;

/// The function that relays the outbox (a binary under `apps/`).
const RELAY: &str = "outbox-relay";

static TEMPLATE: LazyLock<Template> = LazyLock::new(Template::load);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The worker binary of a consumer, which is also its function's folder under `deploy/build/`.
fn worker_binary(consumer: Consumer) -> String {
    format!("{}-service", consumer.name())
}

/// `localstack/queues.json`: the queues the local stack creates, with their receive limits.
fn local_queues() -> BTreeMap<String, u64> {
    let specs: serde_json::Value = serde_json::from_str(&read("localstack/queues.json")).unwrap();
    let specs = specs.as_array().expect("queues.json is a list");
    specs
        .iter()
        .map(|s| {
            let name = s["name"].as_str().expect("a queue name").to_owned();
            (
                name,
                s["max_receive_count"].as_u64().expect("max_receive_count"),
            )
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// Reading the template: short-form tags (!Ref X) and long forms ({Ref: X}) alike.
// ------------------------------------------------------------------------------------------

/// The argument of intrinsic function `name` ("Ref", "GetAtt", "Sub") if `value` is one.
fn intrinsic<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Tagged(tagged) if tagged.tag == name => Some(&tagged.value),
        Value::Mapping(map) if map.len() == 1 => {
            let long = if name == "Ref" {
                "Ref".to_owned()
            } else {
                format!("Fn::{name}")
            };
            map.get(long.as_str())
        }
        _ => None,
    }
}

/// The logical id named by `!Ref X`.
fn ref_of(value: &Value) -> Option<&str> {
    match intrinsic(value, "Ref")? {
        Value::String(id) => Some(id),
        _ => None,
    }
}

/// The logical id and attribute of `!GetAtt X.Attr` or `Fn::GetAtt: [X, Attr]`.
fn get_att(value: &Value) -> Option<(String, String)> {
    match intrinsic(value, "GetAtt")? {
        Value::String(s) => s.split_once('.').map(|(a, b)| (a.to_owned(), b.to_owned())),
        Value::Sequence(parts) => match parts.as_slice() {
            [Value::String(a), Value::String(b)] => Some((a.clone(), b.clone())),
            _ => None,
        },
        _ => None,
    }
}

fn text(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

struct Template {
    root: Value,
}

impl Template {
    fn load() -> Self {
        let root = serde_norway::from_str(&read("deploy/template.yaml"))
            .expect("deploy/template.yaml is YAML");
        Template { root }
    }

    fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        let resources = self.root["Resources"].as_mapping().expect("Resources");
        resources
            .iter()
            .map(|(id, r)| (id.as_str().expect("logical id"), r))
    }

    fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> {
        self.resources()
            .filter(move |(_, r)| r["Type"].as_str() == Some(kind))
    }

    fn resource(&self, id: &str) -> &Value {
        let found = self.resources().find(|(i, _)| *i == id);
        found.unwrap_or_else(|| panic!("no resource {id}")).1
    }

    /// A parameter's default, as text.
    fn default_of(&self, parameter: &str) -> String {
        let value = &self.root["Parameters"][parameter]["Default"];
        match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => panic!("parameter {parameter} has no default"),
        }
    }

    /// A literal number, or a parameter's default for `!Ref Parameter`.
    fn resolve_number(&self, value: &Value) -> Option<u64> {
        match ref_of(value) {
            Some(parameter) => self.default_of(parameter).parse().ok(),
            None => number(value),
        }
    }

    /// A literal string, or `!Sub` over parameters, resolved with the parameters' defaults.
    fn resolve_text(&self, value: &Value) -> String {
        let Some(pattern) = intrinsic(value, "Sub") else {
            return text(value).expect("a string or !Sub").to_owned();
        };
        let mut out = text(pattern).expect("!Sub with a string").to_owned();
        while let Some(start) = out.find("${") {
            let end = start + out[start..].find('}').expect("closing brace");
            let value = self.default_of(&out[start + 2..end]);
            out.replace_range(start..=end, &value);
        }
        out
    }

    /// A function's property, else the one in `Globals.Function`.
    fn function_property<'a>(&'a self, function: &'a Value, key: &str) -> Option<&'a Value> {
        function["Properties"]
            .get(key)
            .or_else(|| self.root["Globals"]["Function"].get(key))
    }

    /// A function's environment: `Globals.Function` merged with its own (its own wins).
    fn environment(&self, function: &Value) -> BTreeMap<String, Value> {
        let globals = &self.root["Globals"]["Function"]["Environment"]["Variables"];
        let own = &function["Properties"]["Environment"]["Variables"];
        [globals, own]
            .into_iter()
            .filter_map(Value::as_mapping)
            .flatten()
            .map(|(k, v)| (k.as_str().expect("variable name").to_owned(), v.clone()))
            .collect()
    }

    /// The functions, by the binary their `CodeUri` (`build/<binary>/`) holds.
    fn functions(&self) -> BTreeMap<String, (&str, &Value)> {
        self.of_type("AWS::Serverless::Function")
            .map(|(id, f)| {
                let uri = f["Properties"]["CodeUri"].as_str().expect("CodeUri");
                let binary = uri
                    .strip_prefix("build/")
                    .and_then(|b| b.strip_suffix('/'))
                    .unwrap_or_else(|| panic!("{id}: CodeUri {uri} is not build/<binary>/"));
                (binary.to_owned(), (id, f))
            })
            .collect()
    }

    fn function(&self, binary: &str) -> (&str, &Value) {
        *self
            .functions()
            .get(binary)
            .unwrap_or_else(|| panic!("no function with CodeUri build/{binary}/"))
    }

    /// The logical id of the queue named `name` (its `QueueName` resolved).
    fn queue_named(&self, name: &str) -> &str {
        self.of_type("AWS::SQS::Queue")
            .find(|(_, q)| self.resolve_text(&q["Properties"]["QueueName"]) == name)
            .unwrap_or_else(|| panic!("no queue named {name}"))
            .0
    }

    /// The alarms on metric `metric` of queue `queue_id` (dimension QueueName).
    fn queue_alarms(&self, queue_id: &str, metric: &str) -> Vec<&Value> {
        self.of_type("AWS::CloudWatch::Alarm")
            .map(|(_, a)| &a["Properties"])
            .filter(|a| a["Namespace"].as_str() == Some("AWS/SQS"))
            .filter(|a| a["MetricName"].as_str() == Some(metric))
            .filter(|a| {
                let dimensions = a["Dimensions"].as_sequence().into_iter().flatten();
                dimensions.into_iter().any(|d| {
                    d["Name"].as_str() == Some("QueueName")
                        && get_att(&d["Value"]) == Some((queue_id.to_owned(), "QueueName".into()))
                })
            })
            .collect()
    }
}

/// The queue names the code derives for a consumer: (queue, dead-letter queue).
fn expected_queue_names(consumer: Consumer) -> (String, String) {
    let prefix = TEMPLATE.default_of("QueuePrefix");
    let sqs = Settings::from_sources(&[("APP__SQS__QUEUE_PREFIX", &prefix)])
        .unwrap()
        .sqs;
    let dlq = format!("{}-dlq", consumer.name());
    (sqs.queue_name(consumer.name()), sqs.queue_name(&dlq))
}

// ------------------------------------------------------------------------------------------
// The checks.
// ------------------------------------------------------------------------------------------

#[test]
fn localstack_makes_a_queue_and_a_dlq_per_consumer_named_like_the_code() {
    let names: Vec<String> = local_queues().into_keys().collect();
    let mut consumers: Vec<String> = Consumer::ALL.iter().map(|c| c.name().into()).collect();
    consumers.sort();
    assert_eq!(
        names, consumers,
        "localstack/queues.json vs domain::Consumer::ALL"
    );
    let script = read("localstack/init/ready.d/create_queues.py");
    assert!(
        script.contains(r#"f"{prefix}{name}-dlq.fifo""#),
        "create_queues.py no longer names DLQs <prefix><name>-dlq.fifo: update this test and the template"
    );
}

#[test]
fn every_consumer_has_a_fifo_queue_with_a_fifo_dead_letter_queue() {
    let receives = local_queues();
    for consumer in Consumer::ALL {
        let (queue_name, dlq_name) = expected_queue_names(consumer);
        let queue_id = TEMPLATE.queue_named(&queue_name);
        let dlq_id = TEMPLATE.queue_named(&dlq_name);
        let queue = &TEMPLATE.resource(queue_id)["Properties"];
        let dlq = &TEMPLATE.resource(dlq_id)["Properties"];
        for (id, q) in [(queue_id, queue), (dlq_id, dlq)] {
            assert_eq!(q["FifoQueue"].as_bool(), Some(true), "{id} is FIFO");
            // The relay sets MessageDeduplicationId = event id.
            assert_eq!(
                q["ContentBasedDeduplication"].as_bool(),
                Some(false),
                "{id}"
            );
        }
        let redrive = &queue["RedrivePolicy"];
        assert_eq!(
            get_att(&redrive["deadLetterTargetArn"]),
            Some((dlq_id.to_owned(), "Arn".into())),
            "{queue_id} redrives to {dlq_id}"
        );
        assert_eq!(
            number(&redrive["maxReceiveCount"]),
            Some(receives[consumer.name()]),
            "{queue_id}: maxReceiveCount as in localstack/queues.json"
        );
    }
    let expected = 2 * Consumer::ALL.len();
    let queues = TEMPLATE.of_type("AWS::SQS::Queue").count();
    assert_eq!(
        queues, expected,
        "a queue and a DLQ per consumer, nothing else"
    );
}

#[test]
fn every_consumer_has_a_worker_function_fed_by_its_own_queue_only() {
    for consumer in Consumer::ALL {
        let (queue_name, _) = expected_queue_names(consumer);
        let queue_id = TEMPLATE.queue_named(&queue_name);
        let (id, function) = TEMPLATE.function(&worker_binary(consumer));

        let events: Vec<&Value> = function["Properties"]["Events"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{id} has no Events"))
            .values()
            .collect();
        let [event] = events.as_slice() else {
            panic!("{id}: exactly one event source, got {}", events.len());
        };
        assert_eq!(event["Type"].as_str(), Some("SQS"), "{id}");
        let source = &event["Properties"];
        assert_eq!(
            get_att(&source["Queue"]),
            Some((queue_id.to_owned(), "Arn".into())),
            "{id} is fed by {queue_id}"
        );
        let responses = source["FunctionResponseTypes"].as_sequence();
        assert!(
            responses
                .into_iter()
                .flatten()
                .any(|r| r.as_str() == Some("ReportBatchItemFailures")),
            "{id}: the adapter answers with partial batch responses"
        );
        let max = TEMPLATE.resolve_number(&source["ScalingConfig"]["MaximumConcurrency"]);
        assert!(max.is_some_and(|m| m >= 2), "{id}: MaximumConcurrency >= 2");

        let timeout = TEMPLATE
            .function_property(function, "Timeout")
            .and_then(number)
            .unwrap_or_else(|| panic!("{id}: no Timeout"));
        let visibility = number(&TEMPLATE.resource(queue_id)["Properties"]["VisibilityTimeout"])
            .unwrap_or_else(|| panic!("{queue_id}: no VisibilityTimeout"));
        assert!(
            visibility >= 6 * timeout,
            "{queue_id}: visibility {visibility} s < 6 x {id}'s timeout {timeout} s"
        );

        // Records run one after the other: a whole batch of slow records still ends in time.
        let batch = number(&source["BatchSize"]).unwrap_or_else(|| panic!("{id}: no BatchSize"));
        assert!(
            (1..=10).contains(&batch),
            "{id}: a FIFO batch holds 1 to 10 records"
        );
        let handler = TEMPLATE.environment(function)["APP__WORKER__HANDLER_TIMEOUT_S"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{id}: APP__WORKER__HANDLER_TIMEOUT_S"));
        assert!(
            batch * handler < timeout,
            "{id}: {batch} records x {handler} s must end within its timeout {timeout} s"
        );
    }
}

#[test]
fn every_queue_has_its_alarms() {
    for consumer in Consumer::ALL {
        let (queue_name, dlq_name) = expected_queue_names(consumer);
        let queue_id = TEMPLATE.queue_named(&queue_name);
        let dlq_id = TEMPLATE.queue_named(&dlq_name);
        let depth = TEMPLATE.queue_alarms(dlq_id, "ApproximateNumberOfMessagesVisible");
        let age = TEMPLATE.queue_alarms(queue_id, "ApproximateAgeOfOldestMessage");
        for (what, alarms) in [(dlq_id, depth), (queue_id, age)] {
            assert!(!alarms.is_empty(), "no alarm on {what}");
            for alarm in alarms {
                assert!(
                    alarm["AlarmActions"]
                        .as_sequence()
                        .is_some_and(|a| !a.is_empty()),
                    "the alarm on {what} notifies someone"
                );
            }
        }
    }
}

#[test]
fn the_relay_runs_on_a_schedule() {
    let (id, relay) = TEMPLATE.function(RELAY);
    let events = relay["Properties"]["Events"].as_mapping();
    let scheduled = events.into_iter().flatten().any(|(_, e)| {
        let expression = match e["Type"].as_str() {
            Some("Schedule") => &e["Properties"]["Schedule"],
            Some("ScheduleV2") => &e["Properties"]["ScheduleExpression"],
            _ => return false,
        };
        expression.as_str().is_some()
    });
    assert!(scheduled, "{id} has a schedule");
    let timeout = TEMPLATE
        .function_property(relay, "Timeout")
        .and_then(number)
        .expect("relay Timeout");
    let run = TEMPLATE.environment(relay)["APP__RELAY__LAMBDA_RUN_S"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .expect("APP__RELAY__LAMBDA_RUN_S");
    assert!(
        run < timeout,
        "{id}: a run of {run} s ends before the timeout {timeout} s"
    );
}

#[test]
fn every_function_reads_the_secret_and_runs_in_the_vpc() {
    for (binary, (id, function)) in TEMPLATE.functions() {
        let env = TEMPLATE.environment(function);
        let var = |name: &str| env.get(name).unwrap_or_else(|| panic!("{id}: no {name}"));
        assert_eq!(ref_of(var("APP_SECRETS_ARN")), Some("AppSecretArn"), "{id}");
        assert_eq!(
            ref_of(var("APP__SQS__QUEUE_PREFIX")),
            Some("QueuePrefix"),
            "{id}"
        );
        assert_eq!(
            var("APP__SQS__ENDPOINT_URL").as_str(),
            Some(""),
            "{id}: AWS's endpoint"
        );
        let vpc = TEMPLATE
            .function_property(function, "VpcConfig")
            .unwrap_or_else(|| panic!("{id} ({binary}): no VpcConfig"));
        assert!(
            vpc.get("SubnetIds").is_some() && vpc.get("SecurityGroupIds").is_some(),
            "{id}"
        );
        let runtime = TEMPLATE.function_property(function, "Runtime");
        assert_eq!(
            runtime.and_then(Value::as_str),
            Some("provided.al2023"),
            "{id}"
        );
        let handler = TEMPLATE.function_property(function, "Handler");
        assert_eq!(handler.and_then(Value::as_str), Some("bootstrap"), "{id}");
    }
}

#[test]
fn every_function_is_a_binary_of_the_workspace() {
    let functions = TEMPLATE.functions();
    let mut expected: Vec<String> = Consumer::ALL.into_iter().map(worker_binary).collect();
    expected.push(RELAY.to_owned());
    expected.sort();
    let found: Vec<&String> = functions.keys().collect();
    assert_eq!(
        found,
        expected.iter().collect::<Vec<_>>(),
        "one function per binary"
    );
    for binary in functions.keys() {
        let manifest = read(&format!("apps/{binary}/Cargo.toml"));
        let name = manifest
            .lines()
            .find_map(|l| l.trim().strip_prefix("name = "))
            .map(|n| n.trim_matches('"'));
        assert_eq!(name, Some(binary.as_str()), "apps/{binary}/Cargo.toml");
        let main = repo_root().join(format!("apps/{binary}/src/main.rs"));
        assert!(main.is_file(), "{binary} is a binary");
    }
    // scripts/lambda.sh copies the e-mail templates next to the bootstrap (/var/task).
    let (id, email) = TEMPLATE.function(&worker_binary(Consumer::Email));
    let dir = TEMPLATE.environment(email)["APP__SMTP__TEMPLATES_DIR"].clone();
    assert_eq!(dir.as_str(), Some("/var/task/templates"), "{id}");
    assert!(repo_root().join("apps/email-service/templates").is_dir());
}

/// What a deployer fills in for the parameters without a default (docs/DEPLOY.md, step 4).
fn example_parameter(parameter: &str) -> String {
    match parameter {
        "AWS::Region" => "eu-central-1".into(),
        "ShopPublicUrl" => "https://shop.example.com".into(),
        "SmtpHost" => "email-smtp.eu-central-1.amazonaws.com".into(),
        "ShippingPartnerUrl" => "https://partner.example.com".into(),
        "SmtpFrom" => "Shop <orders@shop.example.com>".into(),
        other => TEMPLATE.default_of(other),
    }
}

/// The secret's keys as docs/DEPLOY.md (step 2) has them, with values of a real deployment.
const SECRET: [(&str, &str); 7] = [
    (
        "APP__DATABASE__URL",
        "postgres://chargeflow:pw@db.internal.example:5432/chargeflow",
    ),
    ("APP__STRIPE__SECRET_KEY", "sk_live_example"),
    ("APP__STRIPE__WEBHOOK_SECRET", "whsec_example"),
    ("APP__SHIPPING__CALLBACK_SECRET", "partner_example"),
    (
        "APP__SHOP__LINK_SECRET",
        "an-example-link-secret-of-more-than-32-bytes",
    ),
    ("APP__SMTP__USERNAME", "AKIAEXAMPLE"),
    ("APP__SMTP__PASSWORD", "example"),
];

#[test]
fn every_function_starts_under_the_production_profile_with_the_documented_secret() {
    for (binary, (id, function)) in TEMPLATE.functions() {
        let env = TEMPLATE.environment(function);
        let profile = env.get("APP__PROFILE").and_then(Value::as_str);
        assert_eq!(profile, Some("production"), "{id}");
        let mut pairs: Vec<(String, String)> = env
            .iter()
            .filter(|(name, _)| name.starts_with("APP__"))
            .filter_map(|(name, value)| {
                let value = match (ref_of(value), value) {
                    (Some(parameter), _) => example_parameter(parameter),
                    (None, Value::String(s)) => s.clone(),
                    (None, Value::Number(n)) => n.to_string(),
                    (None, Value::Bool(b)) => b.to_string(),
                    _ => return None,
                };
                Some((name.clone(), value))
            })
            .collect();
        pairs.extend(
            SECRET
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let settings = Settings::from_sources(&borrowed).unwrap_or_else(|e| panic!("{id}: {e}"));
        let process = match binary.as_str() {
            RELAY => settings::Process::Relay,
            "invoice-service" => settings::Process::Invoice,
            "billing-service" => settings::Process::Billing,
            "shipping-service" => settings::Process::Shipping,
            "email-service" => settings::Process::Email,
            other => panic!("{id}: unknown binary {other}"),
        };
        settings
            .check_profile(process)
            .unwrap_or_else(|e| panic!("{id} would refuse to start: {e}"));
    }
}
