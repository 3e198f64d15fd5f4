//! The Open Inference Protocol ("KServe V2") wire format, independent of any
//! transport: what MLServer, Triton and KServe clients send and expect.
//!
//! - [`wire`]: the REST JSON request / response / metadata types.
//! - [`datatype`]: the tensor datatypes and their element sizes.
//! - [`tensor`]: typed, flat, row-major tensor buffers ([`Values`]) built
//!   from JSON `data`, from little-endian raw bytes, or from gRPC contents,
//!   with shape × datatype checks ([`InputTensor`]).
//! - [`binary`]: the binary tensor extension of the REST body
//!   (`Inference-Header-Content-Length`, `binary_data_size`, the raw
//!   single-input body).
//! - [`frame`]: input tensors into the Polars DataFrame of an endpoint's
//!   [`Schema`](crate::schema::Schema).
//! - [`metadata`]: model metadata from the schema.
//! - [`infer`]: a V2 request through the inference service (parameters,
//!   columns, queue, outputs), shared by the REST and gRPC front doors.
//! - [`output`]: handler predictions into output tensors, output selection,
//!   and the REST response body (JSON or binary).
//!
//! Every failure is a [`V2Error`] naming the input or output at fault.

pub mod binary;
pub mod datatype;
pub mod error;
pub mod frame;
pub mod infer;
pub mod metadata;
pub mod output;
pub mod tensor;
pub mod wire;

pub use binary::{parse_rest, RestRequest};
pub use datatype::Datatype;
pub use error::V2Error;
pub use frame::to_frame;
pub use output::{encode_rest, outputs_from_predictions, select_outputs, OutputTensor, RestBody, DEFAULT_OUTPUT};
pub use tensor::{InputTensor, Source, Values};
pub use wire::Parameters;
