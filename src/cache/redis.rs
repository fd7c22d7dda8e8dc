//! Redis cache adapter: one multiplexed, auto-reconnecting connection with short timeouts.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Cache, CacheError};

const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisCache {
    connection: ConnectionManager,
    namespace: String,
}

fn unavailable(error: redis::RedisError) -> CacheError {
    CacheError::Unavailable(error.to_string())
}

impl RedisCache {
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config).await.map_err(unavailable)?;
        Ok(Self { connection, namespace: namespace.to_owned() })
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }
}

#[async_trait]
impl Cache for RedisCache {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let mut connection = self.connection.clone();
        let value: Option<Vec<u8>> = connection.get(self.key(key)).await.map_err(unavailable)?;
        Ok(value.map(Bytes::from))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let _: () = connection.pset_ex(self.key(key), value.as_ref(), millis).await.map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        let _: () = connection.del(self.key(key)).await.map_err(unavailable)?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        let _: String = redis::cmd("PING").query_async(&mut connection).await.map_err(unavailable)?;
        Ok(())
    }
}
