//! The gRPC side of the Open Inference Protocol: the generated
//! `inference.GRPCInferenceService` types ([`proto`]) and their conversion
//! to and from the transport-neutral [`crate::v2`] types ([`convert`]).
//! The server itself runs with tonic on its own port (actix cannot send the
//! HTTP/2 trailers gRPC needs); [`backend`] puts the inference service
//! behind it and [`status`] is the one map from error kinds to gRPC codes.

pub mod backend;
pub mod convert;
pub mod door;
pub mod proto;
pub mod server;
pub mod status;
