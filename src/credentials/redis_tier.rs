//! The [`SharedTier`] on Redis or Valkey (feature `redis`): one multiplexed connection that reconnects
//! by itself, `MGET` to read, `SET PX` to write, `SET NX PX` to lock, and a compare-and-delete script
//! to unlock.

use std::time::Duration;

use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::error::SettingsError;
use super::shared::{SharedTier, TierFuture};
use super::source::{ErrorKind, SourceError};

/// Deletes the lock only if the caller's token still holds it.
const UNLOCK: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// Redis or Valkey at one URL.
pub(crate) struct RedisTier {
    connection: ConnectionManager,
    shown: String,
}

impl RedisTier {
    /// A tier on `url` (`redis://` or `rediss://` for TLS; `password` replaces the URL's), connecting on
    /// first use and again after every failure, each attempt bounded by `connect_timeout`.
    pub(crate) fn new(url: &str, password: Option<&str>, connect_timeout: Duration) -> Result<Self, SettingsError> {
        let shown = redacted(url);
        let invalid =
            |e: redis::RedisError| SettingsError::SharedCacheUrl { url: shown.clone(), reason: e.to_string() };
        let mut info = url.into_connection_info().map_err(invalid)?;
        if let Some(password) = password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(invalid)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config).map_err(invalid)?;
        Ok(RedisTier { connection, shown })
    }
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier").field("url", &self.shown).finish_non_exhaustive()
    }
}

/// `url` with its password, if any, replaced by `***`.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return url.to_owned() };
    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
    let user = if userinfo.contains(':') { format!("{user}:***") } else { "***".to_owned() };
    let path = path.map_or(String::new(), |p| format!("/{p}"));
    format!("{scheme}://{user}@{host}{path}")
}

fn failed(what: &str, error: redis::RedisError) -> SourceError {
    let kind = if error.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Connection };
    SourceError::new(kind, format!("the shared cache tier ({what}): {error}"))
}

impl SharedTier for RedisTier {
    fn get<'a>(&'a self, keys: &'a [String]) -> TierFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            // `MGET` of one key answers a bare value: ask with a list every time.
            let values: Vec<Option<Vec<u8>>> =
                redis::cmd("MGET").arg(keys).query_async(&mut connection).await.map_err(|e| failed("MGET", e))?;
            Ok(values)
        })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> TierFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let () = redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(millis)
                .query_async(&mut connection)
                .await
                .map_err(|e| failed("SET", e))?;
            Ok(())
        })
    }

    fn try_lock<'a>(&'a self, key: &'a str, token: &'a str, ttl: Duration) -> TierFuture<'a, bool> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let taken: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(millis)
                .query_async(&mut connection)
                .await
                .map_err(|e| failed("SET NX", e))?;
            Ok(taken.is_some())
        })
    }

    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> TierFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let _: i64 = redis::cmd("EVAL")
                .arg(UNLOCK)
                .arg(1)
                .arg(key)
                .arg(token)
                .query_async(&mut connection)
                .await
                .map_err(|e| failed("EVAL unlock", e))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redacted("redis://:hunter2@cache:6379/0"), "redis://:***@cache:6379/0");
        assert_eq!(redacted("rediss://app:hunter2@cache"), "rediss://app:***@cache");
        assert_eq!(redacted("redis://token@cache"), "redis://***@cache");
        assert_eq!(redacted("redis://cache:6379"), "redis://cache:6379");
        let error = RedisTier::new("redis://:hunter2@", None, Duration::from_secs(1)).err().map(|e| e.to_string());
        assert!(error.as_deref().is_none_or(|e| !e.contains("hunter2")), "{error:?}");
        let error = RedisTier::new("http://:hunter2@cache", None, Duration::from_secs(1)).unwrap_err().to_string();
        assert!(error.contains("invalid shared cache URL") && !error.contains("hunter2"), "{error}");
    }
}
