//! What a config is (its type, default and valid values) and the checks of a value, with
//! Kafka's parsing rules (ConfigDef): numbers and booleans are trimmed first, booleans are
//! case-insensitive, a LIST is comma-separated with the blanks around commas dropped, and an
//! empty LIST value is an empty list. Refusals read like Kafka's ConfigException:
//! `Invalid value <v> for configuration <name>: <why>`.

/// Kafka's config types, by the ids DescribeConfigs reports (DescribeConfigsResponse.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

impl ConfigType {
    pub fn id(self) -> i8 {
        self as i8
    }
}

/// The values a config accepts beyond its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Any value of the type.
    Any,
    /// A number at least this.
    AtLeast(i64),
    /// A number in this closed range.
    Between(i64, i64),
    /// A double in [0, 1].
    Ratio,
    /// `-1` (the codec's default) or a number in this range (`compression.gzip.level`).
    DefaultOrBetween(i64, i64),
    /// `-1` (off) or a positive number (Runnel's `flush.bytes`).
    OffOrPositive,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A list whose every element is one of these.
    ListOf(&'static [&'static str]),
    /// Kafka's throttled-replica list: `*`, or `partition:broker` pairs.
    ThrottledReplicas,
    /// A Kafka version such as `2.8` or `3.0-IV1` (the deprecated `message.format.version`).
    KafkaVersion,
}

/// One config: name, type, default (`None`: Kafka's null) and valid values.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    pub config_type: ConfigType,
    pub default: Option<&'static str>,
    pub check: Check,
    pub doc: &'static str,
}

impl ConfigDef {
    /// Checks `value` as Kafka would accept it for this config.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        let invalid = |why: String| {
            format!(
                "Invalid value {value} for configuration {}: {why}",
                self.name
            )
        };
        let trimmed = value.trim();
        match self.config_type {
            ConfigType::Boolean => {
                if !(trimmed.eq_ignore_ascii_case("true") || trimmed.eq_ignore_ascii_case("false"))
                {
                    return Err(invalid("Expected value to be either true or false".into()));
                }
                Ok(())
            }
            ConfigType::Int => {
                let n = trimmed
                    .parse::<i32>()
                    .map_err(|_| invalid("Not a number of type INT".into()))?;
                self.check_number(i64::from(n)).map_err(invalid)
            }
            ConfigType::Long => {
                let n = trimmed
                    .parse::<i64>()
                    .map_err(|_| invalid("Not a number of type LONG".into()))?;
                self.check_number(n).map_err(invalid)
            }
            ConfigType::Double => {
                let x = trimmed
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| invalid("Not a number of type DOUBLE".into()))?;
                match self.check {
                    Check::Ratio if !(0.0..=1.0).contains(&x) => {
                        Err(invalid("Value must be between 0 and 1".into()))
                    }
                    _ => Ok(()),
                }
            }
            ConfigType::String => match self.check {
                Check::OneOf(valid) if !valid.contains(&trimmed) => Err(invalid(format!(
                    "String must be one of: {}",
                    valid.join(", ")
                ))),
                Check::KafkaVersion if !is_kafka_version(trimmed) => Err(invalid(
                    "not a Kafka version (such as 2.8 or 3.0-IV1)".into(),
                )),
                _ => Ok(()),
            },
            ConfigType::List => {
                let items = list_items(value);
                match self.check {
                    Check::ListOf(valid) => match items.iter().find(|i| !valid.contains(i)) {
                        Some(_) => Err(invalid(format!(
                            "String must be one of: {}",
                            valid.join(", ")
                        ))),
                        None => Ok(()),
                    },
                    Check::ThrottledReplicas => {
                        let wildcard = items == ["*"];
                        if !wildcard && !items.iter().all(|i| is_replica_pair(i)) {
                            return Err(invalid("must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...".into()));
                        }
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    fn check_number(&self, n: i64) -> Result<(), String> {
        match self.check {
            Check::AtLeast(min) if n < min => Err(format!("Value must be at least {min}")),
            Check::Between(lo, _) if n < lo => Err(format!("Value must be at least {lo}")),
            Check::Between(_, hi) if n > hi => Err(format!("Value must be no more than {hi}")),
            Check::DefaultOrBetween(lo, hi) if n != -1 && !(lo..=hi).contains(&n) => Err(format!(
                "Value must be between {lo} and {hi}, or -1 (the default level)"
            )),
            Check::OffOrPositive if n != -1 && n <= 0 => {
                Err("Value must be -1 (off) or positive".into())
            }
            _ => Ok(()),
        }
    }
}

/// The elements of a LIST value, as Kafka splits it: on commas, blanks around them dropped; an
/// empty (or blank) value is an empty list.
pub fn list_items(value: &str) -> Vec<&str> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed.split(',').map(str::trim).collect()
}

/// `partition:broker`, both unsigned integers.
fn is_replica_pair(item: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    item.split_once(':')
        .is_some_and(|(p, b)| digits(p) && digits(b))
}

/// `major.minor[.patch][-IVn]`, as Kafka names its versions (0.8.0 to 3.9-IV0).
fn is_kafka_version(value: &str) -> bool {
    let (version, iv) = match value.split_once("-IV") {
        Some((v, iv)) => (v, Some(iv)),
        None => (value, None),
    };
    let parts: Vec<&str> = version.split('.').collect();
    let numeric = |s: &&str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    // Kafka reads only the leading segments ("0.10.0.0" is 0.10.0, "2.8.1" is 2.8), so a
    // fourth is accepted as it is there (librdkafka's tests set 0.10.0.0).
    (2..=4).contains(&parts.len()) && parts.iter().all(numeric) && iv.is_none_or(|iv| numeric(&iv))
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn def(config_type: ConfigType, check: Check) -> ConfigDef {
        ConfigDef {
            name: "x",
            config_type,
            default: None,
            check,
            doc: "",
        }
    }

    #[test]
    fn numbers_are_typed_and_ranged() {
        let int = def(ConfigType::Int, Check::AtLeast(4));
        assert!(int.validate(" 4 ").is_ok());
        assert!(int.validate("3").unwrap_err().contains("at least 4"));
        assert!(int.validate("4000000000").unwrap_err().contains("INT"));
        assert!(int
            .validate("four")
            .unwrap_err()
            .contains("Invalid value four for configuration x"));
        let long = def(ConfigType::Long, Check::Between(-5, 5));
        assert!(long.validate("-5").is_ok() && long.validate("5").is_ok());
        assert!(long.validate("6").unwrap_err().contains("no more than 5"));
        assert!(long.validate("-6").unwrap_err().contains("at least -5"));
        let level = def(ConfigType::Int, Check::DefaultOrBetween(1, 9));
        assert!(level.validate("-1").is_ok() && level.validate("9").is_ok());
        assert!(level.validate("0").is_err() && level.validate("10").is_err());
        let ratio = def(ConfigType::Double, Check::Ratio);
        assert!(ratio.validate("0.25").is_ok());
        assert!(ratio.validate("1.5").is_err() && ratio.validate("NaN").is_err());
        let off = def(ConfigType::Long, Check::OffOrPositive);
        assert!(off.validate("-1").is_ok() && off.validate("1").is_ok());
        assert!(off.validate("0").is_err() && off.validate("-2").is_err());
    }

    #[test]
    fn booleans_strings_and_lists() {
        let boolean = def(ConfigType::Boolean, Check::Any);
        assert!(boolean.validate("TRUE").is_ok() && boolean.validate(" false").is_ok());
        assert!(boolean.validate("yes").is_err());
        let one_of = def(ConfigType::String, Check::OneOf(&["a", "b"]));
        assert!(one_of.validate("a").is_ok());
        assert!(one_of.validate("c").unwrap_err().contains("one of: a, b"));
        let list = def(ConfigType::List, Check::ListOf(&["delete", "compact"]));
        assert!(list.validate("delete, compact").is_ok() && list.validate("").is_ok());
        assert!(list.validate("delete,purge").is_err());
        let throttled = def(ConfigType::List, Check::ThrottledReplicas);
        for good in ["*", "", "0:1", "0:1, 1:2"] {
            assert!(throttled.validate(good).is_ok(), "{good}");
        }
        for bad in ["*,0:1", "0", "a:1", "0:1:2"] {
            assert!(throttled.validate(bad).is_err(), "{bad}");
        }
        let version = def(ConfigType::String, Check::KafkaVersion);
        for good in ["0.8.0", "2.8", "3.0-IV1", "0.10.0-IV0", "0.10.0.0", "2.8.1"] {
            assert!(version.validate(good).is_ok(), "{good}");
        }
        for bad in ["", "3", "three", "3.0-IV"] {
            assert!(version.validate(bad).is_err(), "{bad}");
        }
        assert_eq!(list_items(" a , b "), vec!["a", "b"]);
        assert!(list_items("  ").is_empty());
    }
}
