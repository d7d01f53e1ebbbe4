//! OperatorService handlers: calls about this replica rather than a tenant.

use super::admin::require_instance_operator;
use super::pb;
use super::pb::operator_service_server::OperatorService;
use crate::auth::caller;
use crate::cache::{CacheStats, CounterSnapshot};
use crate::metrics::Gauge;
use tonic::{Request, Response, Status};

/// Serves OperatorService.
#[derive(Clone)]
pub struct OperatorApi {
    cache_stats: Gauge<CacheStats>,
}

impl std::fmt::Debug for OperatorApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorApi")
    }
}

impl OperatorApi {
    /// Serves this replica's `cache_stats`.
    pub fn new(cache_stats: Gauge<CacheStats>) -> Self {
        Self { cache_stats }
    }
}

impl From<CounterSnapshot> for pb::CacheCounters {
    fn from(c: CounterSnapshot) -> Self {
        Self {
            hits: c.hits,
            misses: c.misses,
            evictions: c.evictions,
            entries: c.entries,
        }
    }
}

#[tonic::async_trait]
impl OperatorService for OperatorApi {
    async fn get_cache_stats(
        &self,
        req: Request<pb::GetCacheStatsRequest>,
    ) -> Result<Response<pb::GetCacheStatsResponse>, Status> {
        require_instance_operator(&caller(&req)?)?;
        let stats = (self.cache_stats)();
        Ok(Response::new(pb::GetCacheStatsResponse {
            subjects: Some(stats.subjects.into()),
            resources: Some(stats.resources.into()),
            roles: Some(stats.roles.into()),
            indexes: Some(stats.indexes.into()),
        }))
    }
}
