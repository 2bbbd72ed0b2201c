//! The background service that runs every pool's active health checks, each pool on its
//! own interval, and picks up the pools of each reloaded config.

use crate::state::Shared;
use crate::upstream::Pool;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Runs the health checks of every pool of the current config, each pool on its own
/// interval, until shutdown; starts over with the new pools after each reload.
pub struct HealthService {
    shared: Arc<Shared>,
}

impl HealthService {
    pub fn new(shared: Arc<Shared>) -> Self {
        HealthService { shared }
    }
}

#[async_trait]
impl BackgroundService for HealthService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            // Registered before loading the runtime, so a reload in between is not missed.
            let reloaded = self.shared.reloaded.notified();
            let mut loops = JoinSet::new();
            for pool in self.shared.current.load().runtime.pools.values() {
                if let Some(interval) = pool.check_interval {
                    loops.spawn(check_forever(Arc::clone(pool), interval));
                }
            }
            tokio::select! {
                _ = shutdown.changed() => {
                    loops.shutdown().await;
                    return;
                }
                _ = reloaded => loops.shutdown().await,
            }
        }
    }
}

/// One pass every `interval`, measured start to start, as Pingora's own loop does.
async fn check_forever(pool: Arc<Pool>, interval: std::time::Duration) {
    loop {
        let started = Instant::now();
        pool.run_health_check().await;
        tokio::time::sleep_until(started + interval).await;
    }
}
