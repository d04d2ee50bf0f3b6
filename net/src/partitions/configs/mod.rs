//! Config schemas and the logic around them, free of I/O except the dynamic broker configs'
//! file: value checks ([`schema`]), every topic config ([`topic_defs`], which also lists what
//! is accepted but not acted on yet) and broker config ([`broker_defs`]), IncrementalAlterConfigs'
//! operations ([`ops`]), the broker-level configs by source ([`broker_state`]), and what
//! DescribeConfigs reports ([`describe`]).

pub mod broker_defs;
pub mod broker_state;
pub mod describe;
pub mod ops;
pub mod schema;
pub mod topic_defs;
