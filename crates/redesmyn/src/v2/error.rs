//! Why a V2 request could not be served. Every variant names the input or
//! output at fault, so a client sees what to fix; the front doors map
//! [`V2Error::is_client_error`] to 400 / INVALID_ARGUMENT and the rest to
//! 500 / INTERNAL.

use super::datatype::NAMES;
use crate::error::RequestError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum V2Error {
    #[error("malformed inference request: {0}")]
    Malformed(String),
    #[error("input '{input}': unknown datatype '{datatype}' (expected one of {NAMES})")]
    UnknownDatatype { input: String, datatype: String },
    #[error("input '{input}': datatype {datatype} is not supported; send FP32 or FP64")]
    UnsupportedDatatype { input: String, datatype: String },
    #[error("input '{input}': invalid shape {shape:?}: {reason}")]
    BadShape { input: String, shape: Vec<i64>, reason: String },
    #[error("input '{input}': shape {shape:?} holds {expected} elements but the data has {found}")]
    ElementCount { input: String, shape: Vec<i64>, expected: usize, found: usize },
    #[error("input '{input}': shape {shape:?} of {datatype} takes {expected} bytes but {found} were sent")]
    ByteCount { input: String, shape: Vec<i64>, datatype: String, expected: usize, found: usize },
    #[error("input '{input}': {reason}")]
    BadData { input: String, reason: String },
    #[error("input '{input}' has no data (send `data`, or binary data with `binary_data_size`)")]
    NoData { input: String },
    #[error("input '{0}' appears twice")]
    DuplicateInput(String),
    #[error("missing input '{input}' (the model takes {expected})")]
    MissingInput { input: String, expected: String },
    #[error("unknown input '{input}' (the model takes {expected})")]
    UnknownInput { input: String, expected: String },
    #[error(
        "input '{input}' is not one of the model's inputs ({expected}); read as one [N, F] matrix it needs F = {width} \
         columns, one per input in that order, but its shape is {shape:?}"
    )]
    MatrixWidth { input: String, expected: String, width: usize, shape: Vec<usize> },
    #[error("input '{input}': datatype {datatype} does not fit the model's {field} field")]
    TypeMismatch { input: String, datatype: String, field: String },
    #[error("inputs disagree on the batch size: '{first}' has {rows} rows but '{input}' has {found}")]
    BatchMismatch { first: String, rows: usize, input: String, found: usize },
    #[error("input '{input}': binary_data_size {size} runs past the end of the body ({available} bytes left)")]
    BinaryPastBody { input: String, size: usize, available: usize },
    #[error("input '{input}': binary_data_size needs the Inference-Header-Content-Length header")]
    BinaryWithoutHeader { input: String },
    #[error("{0} bytes of binary data follow the last binary input")]
    TrailingBinary(usize),
    #[error("Inference-Header-Content-Length {length} is larger than the body ({body} bytes)")]
    HeaderTooLong { length: u64, body: usize },
    #[error("Inference-Header-Content-Length '{0}' is not a byte count")]
    BadHeaderLength(String),
    #[error("a raw body (Inference-Header-Content-Length: 0) needs a model with one input; this one takes {0}")]
    RawBodyNeedsOneInput(String),
    #[error("parameter '{name}': {reason}")]
    BadParameter { name: String, reason: String },
    #[error("unknown output '{output}' (the model returns {available})")]
    UnknownOutput { output: String, available: String },
    #[error("output '{0}' is requested twice")]
    DuplicateOutput(String),
    /// The handler returned something that is not a tensor (the server's
    /// fault, not the client's).
    #[error("output '{output}': {reason}")]
    BadOutput { output: String, reason: String },
}

impl V2Error {
    /// A bad request (400 / INVALID_ARGUMENT) rather than a server fault.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, V2Error::BadOutput { .. })
    }
}

/// `'a', 'b' and 'c'`-style list of names for messages.
pub(crate) fn names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.into_iter().map(|n| format!("'{n}'")).collect();
    match quoted.len() {
        0 => "nothing".into(),
        1 => quoted[0].clone(),
        n => format!("{} and {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

impl From<V2Error> for RequestError {
    fn from(e: V2Error) -> Self {
        RequestError::Tensor { client: e.is_client_error(), message: e.to_string() }
    }
}
