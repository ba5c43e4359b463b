//! Helpers of the throughput bench: timing child processes with their peak
//! memory ([`measure`]) and the generated data sets ([`data`]).

pub mod data;
pub mod measure;
