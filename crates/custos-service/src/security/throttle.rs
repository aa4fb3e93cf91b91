//! Throttling of failed sign-ins, per account and per client address, by the
//! rules of [`custos_domain::throttle::Throttle`]: no permanent lock-out,
//! every limit a sliding window or a short back-off.

use crate::{Custos, RequestMeta, Result};
use custos_crypto::normalize;
use custos_domain::throttle::Throttle;
use custos_store::Tx;
use uuid::Uuid;

impl Custos {
    /// Throttling keys of an attempt: the account's and the address's.
    pub(crate) fn throttle_keys(
        &self,
        email: &str,
        meta: &RequestMeta,
    ) -> (Vec<u8>, Option<Vec<u8>>) {
        let acct = self
            .inner
            .keys
            .throttle_key("account", &normalize::email(email));
        let addr = meta
            .client
            .as_deref()
            .map(|c| self.inner.keys.throttle_key("address", c));
        (acct, addr)
    }

    /// Whether an attempt must be refused without checking it. `since_success`
    /// is the account's last successful sign-in, if known.
    pub(crate) async fn throttled(
        &self,
        tx: &mut dyn Tx,
        acct: &[u8],
        addr: Option<&[u8]>,
        since_success: Option<i64>,
    ) -> Result<bool> {
        let now = self.now_ms();
        let hour_ago = now - 3_600_000;
        let (in_hour, last) = tx.auth_failures(acct, hour_ago + 1).await?;
        if in_hour >= Throttle::ACCOUNT_PER_HOUR {
            return Ok(true);
        }
        let since = since_success.map_or(hour_ago + 1, |s| s.max(hour_ago + 1));
        let (consecutive, _) = tx.auth_failures(acct, since).await?;
        let wait = Throttle::backoff_secs(
            consecutive,
            Throttle::FREE_FAILURES,
            Throttle::MAX_BACKOFF_SECS,
        );
        if wait > 0 && last.is_some_and(|l| now < l + wait * 1000) {
            return Ok(true);
        }
        if let Some(addr) = addr {
            let (n, last) = tx.auth_failures(addr, now - 15 * 60_000).await?;
            let wait = Throttle::backoff_secs(
                n,
                Throttle::ADDRESS_FREE,
                Throttle::ADDRESS_MAX_BACKOFF_SECS,
            );
            if wait > 0 && last.is_some_and(|l| now < l + wait * 1000) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Records a failed attempt on both keys, and on the account's counter.
    pub(crate) async fn record_failure(
        &self,
        tx: &mut dyn Tx,
        acct: &[u8],
        addr: Option<&[u8]>,
        user: Option<Uuid>,
    ) -> Result<()> {
        let now = self.now_ms();
        tx.record_auth_failure(acct, now).await?;
        if let Some(a) = addr {
            tx.record_auth_failure(a, now).await?;
        }
        if let Some(u) = user {
            let mut auth = self.user_auth(tx, u).await?;
            auth.failed_since_login += 1;
            tx.put_user_auth(&auth).await?;
        }
        Ok(())
    }
}
