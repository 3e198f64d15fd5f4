//! Minimal actix-web JSON echo: the fastest this machine answers HTTP.
//!
//! `POST /echo` parses the JSON body and writes it back; `GET /health/ready`
//! answers `{"status":"ready"}`. `HOST`, `PORT` and `WORKERS` (default 1)
//! come from the environment.

use actix_web::{web, App, HttpResponse, HttpServer};

async fn echo(body: web::Json<serde_json::Value>) -> HttpResponse {
    HttpResponse::Ok().json(body.into_inner())
}

async fn ready() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
}

fn main() -> std::io::Result<()> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8090);
    let workers: usize = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(1);
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| {
            App::new()
                .app_data(web::JsonConfig::default().limit(8 << 20))
                .route("/echo", web::post().to(echo))
                .route("/health/ready", web::get().to(ready))
        })
        .workers(workers)
        .bind((host.as_str(), port))?
        .run()
        .await
    })
}
