//! Request bodies: the content type (JSON, or nothing said) and the size
//! limit, checked from `Content-Length` first and while reading.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures::StreamExt;

use crate::error::RequestError;

/// JSON is assumed when no content type is sent; any other type is refused.
pub fn check_content_type(req: &HttpRequest) -> Result<(), RequestError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(RequestError::UnsupportedMediaType(text.to_string()))
    }
}

/// The whole body, or `PayloadTooLarge` as soon as it is known to pass `limit`.
pub async fn read(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, RequestError> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(RequestError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| RequestError::MalformedJson(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(RequestError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
