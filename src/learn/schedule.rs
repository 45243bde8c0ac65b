//! When the background loops run their next round.

use std::time::Duration;

use tokio::sync::watch;

/// Waits for the next round of a background loop: `wait` elapsed, or another replica announced
/// a new model (`models`, on a shared database) since the last round began, even while this
/// loop was busy with it. False once `shutdown` turns true.
pub async fn next_round(
    models: Option<&mut watch::Receiver<u64>>,
    wait: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let notified = async {
        let changed = match models {
            Some(rx) => rx.changed().await.is_ok(),
            None => false,
        };
        // No channel, or the store is gone: only the timer is left.
        if !changed {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = notified => {}
        _ = shutdown.changed() => {}
    }
    !*shutdown.borrow()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model announced while a background loop was busy with its round (not waiting) still
    /// starts the next round at once, instead of waiting out the poll interval.
    #[tokio::test]
    async fn an_announcement_made_while_busy_is_not_lost() {
        let (announce, mut models) = watch::channel(0u64);
        let (_stop, mut shutdown) = watch::channel(false);
        let hour = Duration::from_secs(3_600);
        announce.send_modify(|n| *n += 1);
        let round = tokio::time::timeout(
            Duration::from_secs(10),
            next_round(Some(&mut models), hour, &mut shutdown),
        )
        .await;
        assert!(matches!(round, Ok(true)), "the announcement was lost");
        // Seen once: without a new announcement the next round waits for its timer.
        let again = tokio::time::timeout(
            Duration::from_millis(200),
            next_round(Some(&mut models), hour, &mut shutdown),
        )
        .await;
        assert!(again.is_err(), "a round without a new announcement");
    }
}
