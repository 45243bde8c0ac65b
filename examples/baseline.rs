//! The floor for `scripts/bench-serving.sh`: a bare axum server with one route that answers a
//! fixed JSON body shaped and sized like a real `?n=10` recommendations response, on the same
//! runtime as `recloop serve` (`#[tokio::main]`'s multi-threaded runtime, `axum::serve`). Whatever
//! it cannot beat is the cost of HTTP, the load generator and the machine, not of recloop.
//!
//! ```text
//! cargo run --release --example baseline -- [--bind 127.0.0.1:8090] [--body-file response.json]
//! curl -s 127.0.0.1:8090/v1/users/u1/recommendations?n=10
//! ```
//! Every GET path answers the same body, so the load script's request rotation works unchanged.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use axum::{http::header, routing::get, Router};
use clap::Parser;

/// A real answer of `GET /v1/users/u196/recommendations?n=10` on the ML-100K train split
/// (495 bytes); the bench script passes the one it just measured with `--body-file` instead.
const MEASURED_BODY: &str = r#"{"user_id":"u196","recommendation_id":"01M8GY9H77CBAWY6CAEGG09AE9-v1","model_version":1,"source":"personalized","items":[{"item_id":"m216","score":0.5027168},{"item_id":"m194","score":0.44199595},{"item_id":"m283","score":0.44152713},{"item_id":"m14","score":0.43017137},{"item_id":"m204","score":0.42972338},{"item_id":"m514","score":0.4088941},{"item_id":"m168","score":0.40166378},{"item_id":"m792","score":0.378697},{"item_id":"m208","score":0.3760848},{"item_id":"m275","score":0.3760004}]}"#;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8090")]
    bind: SocketAddr,
    /// The body to answer (a JSON document); default: `MEASURED_BODY`.
    #[arg(long)]
    body_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let body = match &args.body_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim_end()
            .to_owned(),
        None => MEASURED_BODY.to_owned(),
    };
    serde_json::from_str::<serde_json::Value>(&body).context("the body must be JSON")?;
    // Leaked once: the handler hands out the same bytes without copying, as a fixed answer would.
    let body: &'static str = Box::leak(body.into_boxed_str());
    let answer = move || async move { ([(header::CONTENT_TYPE, "application/json")], body) };
    let app = Router::new().fallback(get(answer)).into_make_service();
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    println!("baseline on {} ({} byte body)", args.bind, body.len());
    axum::serve(listener, app).await?;
    Ok(())
}
