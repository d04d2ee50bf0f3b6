//! Idempotent and transactional producers on a partition: the state the log keeps of each
//! producer ([`state`]: Kafka's sequence, epoch and transaction rules, pure), its snapshots
//! ([`snapshot`]), and its rebuilding when a log opens ([`rebuild`], which also rebuilds the
//! aborted transaction index entries of the batches it replays).
//!
//! The log checks a client's batches against this state in the same synchronous step that
//! assigns their offsets, so two appends can never both pass for the same sequence.

mod rebuild;
pub mod snapshot;
pub mod state;

pub use rebuild::RebuildReport;
pub(crate) use rebuild::{apply_stored_batch, rebuild};
pub use state::{
    BatchMetadata, ProducerEntry, ProducerError, ProducerStates, ProducerUpdate, Verdict,
    RETAINED_BATCHES,
};
