//! Codecs: wire formats in and out of Polars columns.
//!
//! - [`columns`]: the column builders every decoder appends to (format-blind).
//! - [`records`]: the records JSON decoder (`[{...}, ...]` or `{...}`).
//! - [`predictions`]: the records JSON encoder (`{"id":..,"predictions":[..]}`).
//! - [`events`]: stream events as native JSON objects (SSE and in-process).
//!
//! A new format (V2 JSON or binary tensors, protobuf, Arrow) is a new module
//! here that decodes into [`columns`] builders and encodes from
//! [`crate::handler::Predictions`]; the service and batcher do not change.

pub mod columns;
pub mod events;
pub mod predictions;
pub mod records;
