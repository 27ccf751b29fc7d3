//! Customers' profiles ([`ProfileStore`]), written once for both backends (as `backend.rs`
//! is): one row per page and customer; a save replaces the row unless the kept profile was
//! fetched later, in one statement.

use super::Store;
use crate::ids::{PageId, UserId};
use crate::profile::{CustomerProfile, ProfileStore};
use crate::store::StoreError;
use crate::store::sql::from_sqlx;
use crate::time::{from_millis, millis};

const SELECT_PROFILE: &str =
    "SELECT name, picture_url, fetched_ms FROM customer_profiles WHERE page = $1 AND customer = $2";

const SAVE_PROFILE: &str = "INSERT INTO customer_profiles (page, customer, name, picture_url, fetched_ms) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (page, customer) DO UPDATE SET name = excluded.name, picture_url = excluded.picture_url, fetched_ms = excluded.fetched_ms
    WHERE customer_profiles.fetched_ms <= excluded.fetched_ms";

#[async_trait::async_trait]
impl ProfileStore for Store {
    async fn profile(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<CustomerProfile>, StoreError> {
        let row: Option<(Option<String>, Option<String>, i64)> = sqlx::query_as(SELECT_PROFILE)
            .bind(page.as_str())
            .bind(customer.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        // Read back through the limits: a row written by another program is held to them too.
        Ok(row.map(|(name, picture, fetched)| {
            CustomerProfile::new(name.as_deref(), picture.as_deref(), from_millis(fetched))
        }))
    }

    async fn save_profile(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
        profile: &CustomerProfile,
    ) -> Result<(), StoreError> {
        sqlx::query(SAVE_PROFILE)
            .bind(page.as_str())
            .bind(customer.as_str())
            .bind(profile.name.as_deref())
            .bind(profile.picture_url.as_deref())
            .bind(millis(profile.fetched_at))
            .execute(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }
}
