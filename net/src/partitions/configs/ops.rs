//! IncrementalAlterConfigs' operations on a set of configs, as Kafka's controller applies them
//! (ConfigurationControlManager.incrementalAlterConfigResource): SET replaces a value, DELETE
//! removes it (back to the default), APPEND adds to a LIST the elements not yet in it, SUBTRACT
//! removes elements from a LIST (removing all of them leaves an empty list, which is kept, not
//! deleted). APPEND and SUBTRACT start from the config's current value, or its default when it
//! has none; on a config that is not a LIST they are refused (INVALID_CONFIG).

use std::collections::BTreeMap;

use super::schema::{list_items, ConfigType};

/// One operation on one config (the op codes are IncrementalAlterConfigsRequest's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
    Append(String, String),
    Subtract(String, String),
}

impl ConfigOp {
    /// From a request's op code and value; `Err` says why the request is invalid
    /// (INVALID_REQUEST, as Kafka answers an unknown op or a missing value).
    pub fn from_wire(op: i8, name: &str, value: Option<&str>) -> Result<ConfigOp, String> {
        let (name, value) = (name.to_owned(), value.map(str::to_owned));
        let needs_value = |value: Option<String>| {
            value.ok_or_else(|| format!("Null value not supported for : {name}"))
        };
        Ok(match op {
            0 => ConfigOp::Set(name.clone(), needs_value(value)?),
            1 => ConfigOp::Delete(name),
            2 => ConfigOp::Append(name.clone(), needs_value(value)?),
            3 => ConfigOp::Subtract(name.clone(), needs_value(value)?),
            other => {
                return Err(format!(
                    "Unknown alter configs operation {other} for {name}"
                ))
            }
        })
    }

    pub fn name(&self) -> &str {
        match self {
            ConfigOp::Set(name, _)
            | ConfigOp::Delete(name)
            | ConfigOp::Append(name, _)
            | ConfigOp::Subtract(name, _) => name,
        }
    }
}

/// What an operation needs to know of a config: its type and default, `None` if unknown.
pub type Schema<'a> = &'a dyn Fn(&str) -> Option<(ConfigType, Option<&'static str>)>;

/// Applies `ops` to `configs` in order. `Err` (INVALID_CONFIG) on APPEND or SUBTRACT to a
/// config that isn't a LIST; `configs` is then partly changed, so callers apply to a copy.
pub fn apply(
    configs: &mut BTreeMap<String, String>,
    ops: &[ConfigOp],
    schema: Schema<'_>,
) -> Result<(), String> {
    for op in ops {
        match op {
            ConfigOp::Set(name, value) => {
                configs.insert(name.clone(), value.clone());
            }
            ConfigOp::Delete(name) => {
                configs.remove(name);
            }
            ConfigOp::Append(name, value) | ConfigOp::Subtract(name, value) => {
                let verb = if matches!(op, ConfigOp::Append(..)) {
                    "APPEND"
                } else {
                    "SUBTRACT"
                };
                let default = match schema(name) {
                    Some((ConfigType::List, default)) => default,
                    _ => {
                        return Err(format!(
                            "Can't {verb} to key {name} because its type is not LIST."
                        ))
                    }
                };
                let current = configs
                    .get(name)
                    .map(String::as_str)
                    .or(default)
                    .unwrap_or("");
                let mut list: Vec<String> =
                    list_items(current).into_iter().map(str::to_owned).collect();
                for item in value.split(',').map(str::trim) {
                    if matches!(op, ConfigOp::Append(..)) {
                        if !item.is_empty() && !list.iter().any(|i| i == item) {
                            list.push(item.to_owned());
                        }
                    } else if let Some(at) = list.iter().position(|i| i == item) {
                        list.remove(at);
                    }
                }
                configs.insert(name.clone(), list.join(","));
            }
        }
    }
    Ok(())
}

/// The names `ops` touch more than once (Kafka refuses such a request, INVALID_REQUEST).
pub fn duplicate_names(ops: &[ConfigOp]) -> Vec<String> {
    let mut seen = BTreeMap::<&str, usize>::new();
    for op in ops {
        *seen.entry(op.name()).or_default() += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(name, _)| name.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(name: &str) -> Option<(ConfigType, Option<&'static str>)> {
        match name {
            "cleanup.policy" => Some((ConfigType::List, Some("delete"))),
            "throttled" => Some((ConfigType::List, Some(""))),
            "retention.ms" => Some((ConfigType::Long, Some("604800000"))),
            _ => None,
        }
    }

    fn run(start: &[(&str, &str)], ops: &[ConfigOp]) -> Result<BTreeMap<String, String>, String> {
        let mut configs = start
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        apply(&mut configs, ops, &schema).map(|()| configs)
    }

    fn append(name: &str, value: &str) -> ConfigOp {
        ConfigOp::Append(name.into(), value.into())
    }

    fn subtract(name: &str, value: &str) -> ConfigOp {
        ConfigOp::Subtract(name.into(), value.into())
    }

    #[test]
    fn append_starts_from_the_default_and_skips_what_is_there() {
        let out = run(&[], &[append("cleanup.policy", "compact")]).unwrap();
        assert_eq!(out["cleanup.policy"], "delete,compact");
        let out = run(
            &[("cleanup.policy", "delete")],
            &[append("cleanup.policy", "delete,compact,compact")],
        )
        .unwrap();
        assert_eq!(out["cleanup.policy"], "delete,compact");
        let out = run(
            &[],
            &[append("throttled", "0:1"), append("throttled", "1:1")],
        )
        .unwrap();
        assert_eq!(out["throttled"], "0:1,1:1");
    }

    #[test]
    fn subtract_removes_and_can_leave_an_empty_list() {
        let out = run(
            &[("cleanup.policy", "delete,compact")],
            &[subtract("cleanup.policy", "compact")],
        )
        .unwrap();
        assert_eq!(out["cleanup.policy"], "delete");
        let out = run(&[], &[subtract("cleanup.policy", "delete")]).unwrap();
        assert_eq!(out["cleanup.policy"], "");
        let out = run(&[], &[subtract("cleanup.policy", "absent")]).unwrap();
        assert_eq!(out["cleanup.policy"], "delete");
    }

    #[test]
    fn list_operations_on_other_types_are_refused() {
        let err = run(&[], &[append("retention.ms", "1")]).unwrap_err();
        assert_eq!(
            err,
            "Can't APPEND to key retention.ms because its type is not LIST."
        );
        assert!(run(&[], &[subtract("unknown", "1")])
            .unwrap_err()
            .contains("SUBTRACT"));
    }

    #[test]
    fn set_and_delete() {
        let out = run(
            &[("retention.ms", "5"), ("cleanup.policy", "delete")],
            &[
                ConfigOp::Set("retention.ms".into(), "7".into()),
                ConfigOp::Delete("cleanup.policy".into()),
            ],
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out["retention.ms"], "7");
    }

    #[test]
    fn wire_ops_and_duplicates() {
        assert_eq!(
            ConfigOp::from_wire(2, "a", Some("b")).unwrap(),
            append("a", "b")
        );
        assert_eq!(
            ConfigOp::from_wire(1, "a", None).unwrap(),
            ConfigOp::Delete("a".into())
        );
        assert!(ConfigOp::from_wire(0, "a", None)
            .unwrap_err()
            .contains("Null value"));
        assert!(ConfigOp::from_wire(3, "a", None).is_err());
        assert!(ConfigOp::from_wire(4, "a", Some("b"))
            .unwrap_err()
            .contains("Unknown"));
        let ops = [
            append("a", "1"),
            subtract("b", "1"),
            ConfigOp::Delete("a".into()),
        ];
        assert_eq!(duplicate_names(&ops), vec!["a".to_string()]);
    }
}
