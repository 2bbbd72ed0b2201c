//! When to act: the renewal time of a certificate and the delay after a failed order.
//! Pure functions of times in seconds since the Unix epoch.

use std::time::Duration;

/// The default renewal margin's cap: 30 days before expiry.
const MONTH: i64 = 30 * 24 * 3600;
/// The first retry after a failure; each further failure doubles it.
pub const FIRST_RETRY: Duration = Duration::from_secs(10);
/// Retries never wait longer than this.
pub const MAX_RETRY: Duration = Duration::from_secs(3600);

/// When a certificate valid from `not_before` to `not_after` is renewed: with
/// `renew_before` set, that long before expiry; otherwise when two thirds of its
/// lifetime have passed or 30 days before expiry, whichever is earlier, but never
/// before half its lifetime (so that short-lived certificates are not renewed at once).
pub fn renew_at(not_before: i64, not_after: i64, renew_before: Option<Duration>) -> i64 {
    match renew_before {
        Some(margin) => {
            not_after.saturating_sub(i64::try_from(margin.as_secs()).unwrap_or(i64::MAX))
        }
        None => {
            let lifetime = (not_after - not_before).max(0);
            let two_thirds = not_before + lifetime * 2 / 3;
            two_thirds
                .min(not_after - MONTH)
                .max(not_before + lifetime / 2)
        }
    }
}

/// How long to wait after `failures` failed orders in a row (at least one).
pub fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1u32 << doublings).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_at_two_thirds_or_a_month_before_expiry() {
        let day = 24 * 3600;
        // Let's Encrypt's 90 days: both rules say day 60.
        assert_eq!(renew_at(0, 90 * day, None), 60 * day);
        // A year: a month before the end comes later than two thirds; the earlier wins.
        assert_eq!(renew_at(0, 365 * day, None), 365 * day * 2 / 3);
        // Six days: a month before expiry is before issuance; half the lifetime bounds it.
        assert_eq!(renew_at(0, 6 * day, None), 3 * day);
        assert_eq!(renew_at(1000, 1040, None), 1020);
        // Short-lived certificates with an explicit margin.
        assert_eq!(renew_at(100, 130, Some(Duration::from_secs(10))), 120);
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(retry_after(1), Duration::from_secs(10));
        assert_eq!(retry_after(2), Duration::from_secs(20));
        assert_eq!(retry_after(4), Duration::from_secs(80));
        assert_eq!(retry_after(12), MAX_RETRY);
        assert_eq!(retry_after(u32::MAX), MAX_RETRY);
    }
}
