//! recloop: a recommendation service that learns from every event.
//!
//! Rooms by role, dependencies one way (see ARCHITECTURE.md): `api` (HTTP) → `serve` (the
//! request path) and `learn` (training, the online tally, the model lifecycle) → `model` (pure
//! algorithms, the persisted artifact) and `store` (SQL) → `domain` (the types parsed at the
//! edge). `learn` publishes into `serve`; `serve` never reaches into `learn`.
//!
//! The `recloop` executable and the tools around the service (import, evaluate, synth,
//! simulate) are the `recloop-tools` crate in `tools/`, built on this library.

pub mod api;
pub mod config;
pub mod domain;
pub mod learn;
pub mod model;
pub mod serve;
pub mod server;
pub mod store;
pub mod telemetry;

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use crate::{api::AppState, config::Config, learn::Trainer, serve::Serving, store::DynStore};

/// A built application: the HTTP router and the pieces tests drive directly.
pub struct App {
    pub state: AppState,
    pub router: axum::Router,
}

/// Opens the store (applying migrations), loads the catalog and the newest accepted model, and
/// builds the router. The trainer loop is not started: `serve` does that.
pub async fn build_app(config: Config) -> anyhow::Result<App> {
    config.validate().map_err(anyhow::Error::msg)?;
    let config = Arc::new(config);
    let store = store::connect(&config.database_url)
        .await
        .context("opening the database")?;
    build_app_with_store(config, store).await
}

pub async fn build_app_with_store(config: Arc<Config>, store: DynStore) -> anyhow::Result<App> {
    let serving = Serving::new(
        store.clone(),
        config.user_cache_capacity,
        config.exclude_interacted,
    );
    let impressions = serve::spawn_writer(store.clone(), serving.stats.clone());
    let serving =
        Arc::new(serving.with_policy(serve::Policy::from_config(&config), Some(impressions)));
    serve::stats::spawn_stats_writer(store.clone(), serving.stats.clone());
    serving.catalog.apply(&store.list_items().await?);
    learn::adopt_champion(&store, &serving).await?;
    learn::adopt_challenger(&store, &serving).await?;
    let trainer = Arc::new(Trainer::new(store.clone(), serving.clone(), config.clone()));
    let state = AppState::new(api::Shared {
        rate_limit: api::limit::RateLimit::from_config(&config),
        store,
        serving,
        trainer,
        metrics: telemetry::metrics_handle(),
        // After the metrics recorder: each key's request counter is registered with it.
        keys: api::keys::Keys::from_config(&config),
        config,
    });
    let router = api::router(state.clone());
    Ok(App { state, router })
}

/// Serves until SIGINT/SIGTERM: stops accepting, drains requests in flight (bounded by the
/// grace period), stops the trainer.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let app = build_app(config).await?;
    let config = app.state.config.clone();
    let keys = &app.state.keys;
    use api::keys::Access;
    if !keys.any(Access::Api) {
        tracing::warn!("neither RECLOOP_API_KEY nor RECLOOP_API_KEYS is set: the API is open to anyone who can reach it (development mode)");
    }
    if !keys.any(Access::Admin) {
        tracing::warn!(
            "neither RECLOOP_ADMIN_KEY nor RECLOOP_ADMIN_KEYS is set: model operations and catalog writes need no admin key"
        );
    }
    // Fingerprints, never keys: what an operator matches against `/metrics` while rotating.
    tracing::info!(
        api_keys = ?keys.fingerprints(Access::Api),
        admin_keys = ?keys.fingerprints(Access::Admin),
        "keys configured"
    );
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    tracing::info!(bind = %listener.local_addr()?, "recloop listening");
    let (stop_tx, stop_rx) = watch::channel(false);
    let trainer = tokio::spawn(app.state.trainer.clone().run_loop(stop_rx.clone()));
    let online = Arc::new(learn::Online::new(
        app.state.store.clone(),
        app.state.serving.clone(),
        config.clone(),
    ));
    let online = tokio::spawn(online.run_loop(stop_rx));
    let grace = std::time::Duration::from_secs(config.shutdown_grace_secs);
    let options = server::ServeOptions {
        header_timeout: config.header_timeout(),
        grace,
    };
    let drained = server::serve_connections(listener, app.router, options, async move {
        telemetry::shutdown_signal().await;
        tracing::info!("shutting down: draining requests");
        let _ = stop_tx.send(true);
    })
    .await;
    if !drained {
        tracing::warn!("requests still running after the grace period; closing");
    }
    let _ = tokio::time::timeout(grace, trainer).await;
    let _ = tokio::time::timeout(grace, online).await;
    if let Err(e) = app.state.serving.stats.flush(&app.state.store).await {
        tracing::warn!(error = %e, "the last statistics were not written");
    }
    tracing::info!("stopped");
    Ok(())
}
