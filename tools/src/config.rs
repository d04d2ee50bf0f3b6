//! `runnelctl config get|set`: a broker's configs, or the cluster-wide dynamic defaults, as
//! DescribeConfigs reports them and IncrementalAlterConfigs changes them (what
//! `kafka-configs.sh --entity-type brokers` does). Also what `topic describe` and
//! `topic alter-config` share with it: reading a resource's configs and changing them.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use crate::client::{kafka_error, Client};
use crate::output::{Format, Report};
use crate::Global;

/// Config resource types.
pub const TOPIC: i8 = 2;
pub const BROKER: i8 = 4;

/// DescribeConfigs' source of a config at its built-in default.
pub const DEFAULT_CONFIG: i8 = 5;

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print a broker's configs (value, source, read-only), or with --cluster the cluster-wide
    /// dynamic defaults that are set. Without names, configs at their built-in default are
    /// left out unless --all is given; named configs are printed whatever their source.
    Get {
        #[command(flatten)]
        target: GetTarget,
        /// Also print configs at their built-in defaults.
        #[arg(long)]
        all: bool,
        /// Print only these configs.
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
    /// Change a broker's dynamic configs (--broker ID) or the cluster-wide defaults every
    /// broker uses (--cluster), leaving the others as they are (IncrementalAlterConfigs).
    Set {
        #[command(flatten)]
        target: SetTarget,
        #[command(flatten)]
        changes: Changes,
        /// Only check the changes; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Which broker resource `config get` reads.
#[derive(Debug, clap::Args)]
#[group(multiple = false)]
pub struct GetTarget {
    /// The broker, by id (default: the bootstrap broker).
    #[arg(long, value_name = "ID")]
    broker: Option<i32>,
    /// The cluster-wide dynamic defaults instead of one broker's configs.
    #[arg(long)]
    cluster: bool,
}

/// Which broker resource `config set` changes.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct SetTarget {
    /// The broker, by id.
    #[arg(long, value_name = "ID")]
    broker: Option<i32>,
    /// The cluster-wide dynamic defaults, used by every broker that doesn't set its own.
    #[arg(long)]
    cluster: bool,
}

/// Config changes, applied in one IncrementalAlterConfigs request: all or none.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = true)]
pub struct Changes {
    /// Set a config (repeatable).
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_pair)]
    pub set: Vec<(String, String)>,
    /// Remove a config's setting, back to its default (repeatable).
    #[arg(long, value_name = "NAME")]
    pub delete: Vec<String>,
    /// Add items (comma-separated) to a list config such as cleanup.policy (repeatable).
    #[arg(long, value_name = "NAME=ITEMS", value_parser = parse_pair)]
    pub append: Vec<(String, String)>,
    /// Remove items (comma-separated) from a list config (repeatable).
    #[arg(long, value_name = "NAME=ITEMS", value_parser = parse_pair)]
    pub subtract: Vec<(String, String)>,
}

/// `NAME=VALUE` (the value may itself contain `=`).
pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

pub fn run(command: ConfigCommand, global: &Global) -> Result<(), String> {
    match command {
        ConfigCommand::Get { target, all, names } => get(global, &target, all, &names),
        ConfigCommand::Set {
            target,
            changes,
            dry_run,
        } => {
            // --cluster: the resource named "".
            let name = target.broker.map(|id| id.to_string()).unwrap_or_default();
            let mut client = global.connect()?;
            alter(&mut client, BROKER, &name, &changes, dry_run)?;
            changes_report(BROKER, &name, &changes, dry_run, global.output);
            Ok(())
        }
    }
}

/// One config as DescribeConfigs reports it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
    /// (name, value, source), highest priority first.
    pub synonyms: Vec<(String, Option<String>, i8)>,
}

impl Entry {
    /// The value as a table shows it.
    pub fn shown_value(&self) -> String {
        if self.sensitive {
            "(sensitive)".to_owned()
        } else {
            self.value.clone().unwrap_or_default()
        }
    }

    pub fn to_json(&self) -> Value {
        let synonyms: Vec<Value> = self
            .synonyms
            .iter()
            .map(|(name, value, source)| {
                json!({"name": name, "value": value, "source": source_name(*source)})
            })
            .collect();
        json!({
            "name": self.name,
            "value": if self.sensitive { None } else { self.value.clone() },
            "source": source_name(self.source),
            "read_only": self.read_only,
            "sensitive": self.sensitive,
            "synonyms": synonyms,
        })
    }
}

/// Kafka's name of a DescribeConfigs config source.
pub fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// The configs of each resource `(type, name)`, in order (with synonyms); `keys` limits them
/// to those names (empty: every config).
pub fn describe(
    client: &mut Client,
    resources: &[(i8, String)],
    keys: &[String],
) -> Result<Vec<Vec<Entry>>, String> {
    let mut request = DescribeConfigsRequest::default();
    request.include_synonyms = true;
    request.resources = resources
        .iter()
        .map(|(kind, name)| {
            let mut resource = DescribeConfigsResource::default();
            resource.resource_type = *kind;
            resource.resource_name = StrBytes::from_string(name.clone());
            resource.configuration_keys = (!keys.is_empty()).then(|| {
                keys.iter()
                    .map(|k| StrBytes::from_string(k.clone()))
                    .collect()
            });
            resource
        })
        .collect();
    let response: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, 4, &request)?;
    let mut all = Vec::with_capacity(resources.len());
    for (kind, name) in resources {
        let result = response
            .results
            .iter()
            .find(|r| r.resource_type == *kind && r.resource_name.as_str() == name)
            .ok_or_else(|| {
                format!(
                    "the broker did not describe {}",
                    resource_label(*kind, name)
                )
            })?;
        if result.error_code != 0 {
            return Err(kafka_error(
                result.error_code,
                Some(&with_resource(*kind, name, result.error_message.as_deref())),
            ));
        }
        let mut entries: Vec<Entry> = result
            .configs
            .iter()
            .map(|c| Entry {
                name: c.name.to_string(),
                value: c.value.as_ref().map(|v| v.to_string()),
                source: c.config_source,
                read_only: c.read_only,
                sensitive: c.is_sensitive,
                synonyms: c
                    .synonyms
                    .iter()
                    .map(|s| {
                        (
                            s.name.to_string(),
                            s.value.as_ref().map(|v| v.to_string()),
                            s.source,
                        )
                    })
                    .collect(),
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        all.push(entries);
    }
    Ok(all)
}

/// "topic orders", "broker 0", "the cluster-wide defaults".
pub fn resource_label(kind: i8, name: &str) -> String {
    match (kind, name) {
        (BROKER, "") => "the cluster-wide defaults".to_owned(),
        (BROKER, id) => format!("broker {id}"),
        (_, name) => format!("topic {name}"),
    }
}

/// An error message naming the resource it is about.
fn with_resource(kind: i8, name: &str, message: Option<&str>) -> String {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{}: {m}", resource_label(kind, name)),
        None => resource_label(kind, name),
    }
}

/// The operations `changes` asks for, in Kafka's codes (SET 0, DELETE 1, APPEND 2,
/// SUBTRACT 3): (name, operation, value).
fn operations(changes: &Changes) -> Vec<(String, i8, Option<String>)> {
    let mut ops = Vec::new();
    ops.extend(
        changes
            .set
            .iter()
            .map(|(k, v)| (k.clone(), 0, Some(v.clone()))),
    );
    ops.extend(changes.delete.iter().map(|k| (k.clone(), 1, None)));
    ops.extend(
        changes
            .append
            .iter()
            .map(|(k, v)| (k.clone(), 2, Some(v.clone()))),
    );
    ops.extend(
        changes
            .subtract
            .iter()
            .map(|(k, v)| (k.clone(), 3, Some(v.clone()))),
    );
    ops
}

fn operation_name(op: i8) -> &'static str {
    match op {
        0 => "set",
        1 => "delete",
        2 => "append",
        _ => "subtract",
    }
}

/// Applies `changes` to one resource (or only checks them, `validate_only`).
pub fn alter(
    client: &mut Client,
    kind: i8,
    name: &str,
    changes: &Changes,
    validate_only: bool,
) -> Result<(), String> {
    let mut resource = AlterConfigsResource::default();
    resource.resource_type = kind;
    resource.resource_name = StrBytes::from_string(name.to_owned());
    resource.configs = operations(changes)
        .into_iter()
        .map(|(config, op, value)| {
            let mut c = AlterableConfig::default();
            c.name = StrBytes::from_string(config);
            c.config_operation = op;
            c.value = value.map(StrBytes::from_string);
            c
        })
        .collect();
    let mut request = IncrementalAlterConfigsRequest::default();
    request.resources = vec![resource];
    request.validate_only = validate_only;
    let response: IncrementalAlterConfigsResponse =
        client.call(ApiKey::IncrementalAlterConfigs, 1, &request)?;
    let result = response
        .responses
        .first()
        .ok_or_else(|| "the broker answered IncrementalAlterConfigs with no result".to_owned())?;
    if result.error_code != 0 {
        return Err(kafka_error(
            result.error_code,
            Some(&with_resource(kind, name, result.error_message.as_deref())),
        ));
    }
    Ok(())
}

/// Prints the changes made (or checked, `dry_run`) to a resource.
pub fn changes_report(kind: i8, name: &str, changes: &Changes, dry_run: bool, format: Format) {
    let mut report = Report::new(&["config", "operation", "value"]);
    let mut list = Vec::new();
    for (config, op, value) in operations(changes) {
        report.row(vec![
            config.clone(),
            operation_name(op).to_owned(),
            value.clone().unwrap_or_default(),
        ]);
        list.push(json!({"name": config, "operation": operation_name(op), "value": value}));
    }
    let (resource, json_name) = match kind {
        TOPIC => ("topic", json!(name)),
        _ if name.is_empty() => ("cluster", Value::Null),
        _ => ("broker", json!(name.parse::<i32>().ok())),
    };
    report.json = Some(json!({
        "resource": resource,
        "name": json_name,
        "dry_run": dry_run,
        "changes": list,
    }));
    if format == Format::Table {
        let label = resource_label(kind, name);
        if dry_run {
            println!("{label}: the changes are valid (dry run, nothing changed)");
        } else {
            println!("{label}: changed");
        }
    }
    report.print(format);
}

/// The id of the bootstrap broker `client` reached, as Metadata lists it (or the only broker).
fn bootstrap_broker(client: &mut Client) -> Result<i32, String> {
    let mut request = MetadataRequest::default();
    request.topics = Some(Vec::new());
    request.allow_auto_topic_creation = false;
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request)?;
    let named = response
        .brokers
        .iter()
        .find(|b| format!("{}:{}", b.host.as_str(), b.port) == client.addr());
    match (named, response.brokers.as_slice()) {
        (Some(broker), _) => Ok(broker.node_id.0),
        (None, [only]) => Ok(only.node_id.0),
        _ => Err(format!(
            "{} is not among the brokers listed; name one with --broker ID",
            client.addr()
        )),
    }
}

fn get(global: &Global, target: &GetTarget, all: bool, names: &[String]) -> Result<(), String> {
    let mut client = global.connect()?;
    let name = match (target.broker, target.cluster) {
        (_, true) => String::new(),
        (Some(id), false) => id.to_string(),
        (None, false) => bootstrap_broker(&mut client)?.to_string(),
    };
    let entries = describe(&mut client, &[(BROKER, name.clone())], names)?
        .pop()
        .unwrap_or_default();
    // The cluster-wide resource lists only what is set; a broker lists every config.
    if !name.is_empty() {
        if let Some(missing) = names
            .iter()
            .find(|n| !entries.iter().any(|e| &e.name == *n))
        {
            return Err(format!("broker {name} has no config named {missing}"));
        }
    }
    let shown: Vec<&Entry> = entries
        .iter()
        .filter(|e| all || !names.is_empty() || e.source != DEFAULT_CONFIG)
        .collect();
    let mut report = Report::new(&["name", "value", "source", "read-only"]);
    for entry in &shown {
        report.row(vec![
            entry.name.clone(),
            entry.shown_value(),
            source_name(entry.source).to_owned(),
            entry.read_only.to_string(),
        ]);
    }
    report.json = Some(Value::Array(shown.iter().map(|e| e.to_json()).collect()));
    report.print(global.output);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_at_the_first_equals_sign() {
        assert_eq!(parse_pair("a=b=c"), Ok(("a".to_owned(), "b=c".to_owned())));
        assert_eq!(parse_pair("a="), Ok(("a".to_owned(), String::new())));
        assert!(parse_pair("novalue").is_err());
        assert!(parse_pair("=x").is_err());
    }

    #[test]
    fn changes_become_kafka_operations_in_order() {
        let changes = Changes {
            set: vec![("retention.ms".into(), "1000".into())],
            delete: vec!["segment.bytes".into()],
            append: vec![("cleanup.policy".into(), "compact".into())],
            subtract: vec![("cleanup.policy".into(), "delete".into())],
        };
        let ops = operations(&changes);
        let codes: Vec<i8> = ops.iter().map(|(_, op, _)| *op).collect();
        assert_eq!(codes, [0, 1, 2, 3]);
        assert_eq!(ops[1], ("segment.bytes".to_owned(), 1, None));
    }

    #[test]
    fn resources_are_named_for_people() {
        assert_eq!(resource_label(BROKER, ""), "the cluster-wide defaults");
        assert_eq!(resource_label(BROKER, "0"), "broker 0");
        assert_eq!(resource_label(TOPIC, "orders"), "topic orders");
        assert_eq!(source_name(1), "DYNAMIC_TOPIC_CONFIG");
    }
}
