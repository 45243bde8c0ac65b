//! The model lifecycle in one place: which stored version serves (adopt), how a challenger ends
//! (decide), and which challengers give way to a newer model (retire). The database decides,
//! so every replica converges on the same models; these functions make this process match it.

use anyhow::Context;

use crate::{
    model::{FittedModel, RankerConfig},
    serve::{Serving, Snapshot},
    store::{Activation, DynStore, ModelRecord, ModelStatus},
};

/// Why a challenger could not be promoted or retired by hand.
#[derive(Debug, thiserror::Error)]
pub enum ChallengerError {
    #[error("no challenger is running")]
    None,
    #[error("the challenger was decided meanwhile (by another replica or request)")]
    Decided,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Puts the database's champion ([`crate::store::Service`]) in service if another one is
/// serving: at start-up, and on every trainer tick or announcement, so a model trained by
/// `recloop train` or by another process, or activated by an operator on any replica, is
/// picked up without a restart. True when a model was adopted.
pub async fn adopt_champion(store: &DynStore, serving: &Serving) -> anyhow::Result<bool> {
    let serving_version = serving.current().map(|s| s.version());
    let service = store.service().await?;
    serving.set_pinned(service.pinned_version());
    let champion = service.champion;
    if champion.is_none() || champion == serving_version {
        return Ok(false);
    }
    let Some((record, blob)) = store.champion_model().await? else {
        return Ok(false);
    };
    let version = record.version;
    let model = decode(blob, version).await?;
    if Some(version) > serving.current().map(|s| s.version()) {
        tracing::info!(version, "serving the stored model");
        serving.publish(Snapshot::new(record, model));
    } else if store.service().await?.champion == Some(version) {
        // Asked again after the decoding: a training of this process may have recorded and
        // published a newer champion meanwhile, which a rollback must not undo.
        tracing::info!(version, "serving the activated earlier model");
        serving.roll_back(Snapshot::new(record, model));
    }
    Ok(true)
}

/// Why a version could not be activated.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("there is no model version {0}")]
    Unknown(i64),
    #[error("version {0} is {1}: only an accepted version with stored parameters can serve")]
    NotAccepted(i64, &'static str),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Puts an accepted version in service on every replica (a rollback, or a return to a newer
/// one), pinned or not, ending any running challenger; recorded in the version's reason.
pub async fn activate(
    store: &DynStore,
    serving: &Serving,
    version: i64,
    pin: bool,
) -> Result<ModelRecord, ActivateError> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let from = serving.current().map(|s| s.version());
    let from = from.map_or(String::new(), |v| format!(" in place of version {v}"));
    let pinned = if pin { ", pinned" } else { "" };
    let note = format!("; activated by hand at {now}{from}{pinned}");
    let retire = format!("; retired: version {version} was activated by hand");
    match store
        .activate_model(version, pin, &note, &retire)
        .await
        .map_err(anyhow::Error::from)?
    {
        Activation::Activated(record) => {
            tracing::info!(version, pin, "model activated");
            adopt_challenger(store, serving).await?;
            adopt_champion(store, serving).await?;
            Ok(record)
        }
        Activation::Unknown => Err(ActivateError::Unknown(version)),
        Activation::NotAccepted(status) => {
            Err(ActivateError::NotAccepted(version, status.as_str()))
        }
    }
}

/// Ends a pin (true when there was one); the pinned version serves until the next accepted
/// training.
pub async fn unpin(store: &DynStore, serving: &Serving) -> anyhow::Result<bool> {
    let was = store.unpin_model().await?;
    if was {
        tracing::info!("model unpinned");
    }
    adopt_champion(store, serving).await?;
    Ok(was)
}

/// Retires every challenger but `keep` (a newer model was recorded).
pub async fn retire_others(store: &DynStore, keep: i64) -> anyhow::Result<()> {
    for record in store.model_versions().await? {
        if record.status == ModelStatus::Challenger && record.version != keep {
            let note = format!("; retired: version {keep} replaced it");
            store
                .change_model_status(
                    record.version,
                    ModelStatus::Challenger,
                    ModelStatus::Retired,
                    &note,
                )
                .await?;
        }
    }
    Ok(())
}

/// Makes the in-memory challenger match the database's (another replica may have started,
/// promoted or retired one). True when something changed.
pub async fn adopt_challenger(store: &DynStore, serving: &Serving) -> anyhow::Result<bool> {
    let stored = store.challenger_version().await?;
    let serving_version = serving.challenger().map(|c| c.version());
    if stored == serving_version {
        return Ok(false);
    }
    let champion = serving.current().map(|c| c.version());
    match stored {
        Some(v) if Some(v) > champion => {
            let Some((record, blob)) = store.challenger_model().await? else {
                return Ok(false);
            };
            let model = decode(blob, v).await?;
            tracing::info!(version = v, "serving the stored challenger");
            serving.set_challenger(Some(Snapshot::new(record, model)));
        }
        _ => serving.set_challenger(None),
    }
    // A promoted challenger is the champion now.
    adopt_champion(store, serving).await?;
    Ok(true)
}

/// Ends the running challenger: promoted (it becomes the champion everywhere) or retired.
pub async fn decide_challenger(
    store: &DynStore,
    serving: &Serving,
    promote: bool,
    note: &str,
) -> Result<ModelRecord, ChallengerError> {
    let version = store
        .challenger_version()
        .await
        .map_err(anyhow::Error::from)?
        .ok_or(ChallengerError::None)?;
    let to = if promote {
        ModelStatus::Accepted
    } else {
        ModelStatus::Retired
    };
    let changed = store
        .change_model_status(version, ModelStatus::Challenger, to, note)
        .await
        .map_err(anyhow::Error::from)?;
    if !changed {
        return Err(ChallengerError::Decided);
    }
    tracing::info!(version, status = to.as_str(), note, "challenger decided");
    adopt_challenger(store, serving).await?;
    let record = store
        .model_versions()
        .await
        .map_err(anyhow::Error::from)?
        .into_iter()
        .find(|r| r.version == version)
        .ok_or_else(|| anyhow::anyhow!("version {version} vanished"))?;
    Ok(record)
}

/// The configuration a recorded version was trained with; versions from before training
/// chose for itself recorded only their iALS settings.
pub fn recorded_ranker(params: &serde_json::Value) -> Option<RankerConfig> {
    serde_json::from_value(params["ranker"].clone())
        .ok()
        .or_else(|| {
            Some(RankerConfig::ials(
                serde_json::from_value(params["als"].clone()).ok()?,
            ))
        })
}

/// A stored blob back into a model, off the async runtime (a large model takes a while).
async fn decode(blob: Vec<u8>, version: i64) -> anyhow::Result<FittedModel> {
    tokio::task::spawn_blocking(move || FittedModel::from_bytes(&blob))
        .await
        .context("decoding thread panicked")?
        .with_context(|| format!("decoding model version {version}"))
}
