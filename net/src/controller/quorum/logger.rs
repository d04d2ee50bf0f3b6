//! raft-rs logs through `slog`; this drain forwards its records to `tracing` (target
//! `raft`), so nothing reaches stdout on its own. raft's info messages (elections, role
//! changes) are chatty per tick under churn, so they go to debug; warnings and errors keep
//! their level. Records are formatted only when tracing would keep them.

use std::fmt::{self, Write as _};

use slog::{Drain, Level, OwnedKVList, Record, KV};

#[derive(Debug, Clone, Copy)]
struct TracingDrain;

/// Collects a record's key-value pairs as ` key=value`.
struct Fields(String);

impl slog::Serializer for Fields {
    fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments) -> slog::Result {
        // Writing into a String cannot fail.
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

fn render(record: &Record, values: &OwnedKVList) -> String {
    let mut fields = Fields(String::new());
    let _ = record.kv().serialize(record, &mut fields);
    let _ = values.serialize(record, &mut fields);
    format!("{}{}", record.msg(), fields.0)
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        match record.level() {
            Level::Critical | Level::Error => {
                tracing::error!(target: "raft", "{}", render(record, values))
            }
            Level::Warning => tracing::warn!(target: "raft", "{}", render(record, values)),
            Level::Info | Level::Debug => {
                if tracing::enabled!(target: "raft", tracing::Level::DEBUG) {
                    tracing::debug!(target: "raft", "{}", render(record, values));
                }
            }
            Level::Trace => {
                if tracing::enabled!(target: "raft", tracing::Level::TRACE) {
                    tracing::trace!(target: "raft", "{}", render(record, values));
                }
            }
        }
        Ok(())
    }
}

/// The logger handed to raft-rs.
pub fn raft_logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}
