// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//! A timeout whose timer is kept from one wait to the next (pinlb patch).
//!
//! [`fast_timeout()`](crate::fast_timeout::fast_timeout) registers a timer for every future
//! that is pending, and drops it when the future completes. An operation repeated on the
//! same object, each time under the same timeout (reads of one connection), registers one
//! timer per operation that way. [`KeptTimeout`] keeps the timer it registered: each wait
//! moves the deadline, and a kept timer that fires before the current deadline is
//! registered again for the rest. Busy, the owner registers about one timer per timeout
//! length instead of one per operation; a wait still fails once `limit` has passed since it
//! first found its future pending, as with [`fast_timeout()`](crate::fast_timeout::fast_timeout).

use super::fast_timeout::FastOrTokioTimeout;
use super::{Elapsed, ToTimeout};
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant};

/// The timer of a sequence of waits (for example the reads of one connection).
///
/// A fired timer of a past wait wakes the task that polled it last; that task may have
/// moved on, and is then polled once for nothing.
#[derive(Default)]
pub struct KeptTimeout {
    /// When the registered timer fires at the earliest, and the timer.
    armed: Option<(Instant, Pin<Box<dyn Future<Output = ()> + Send + Sync>>)>,
}

impl std::fmt::Debug for KeptTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptTimeout")
            .field("fires", &self.armed.as_ref().map(|(fires, _)| fires))
            .finish()
    }
}

impl KeptTimeout {
    /// `future`'s output, or [`Elapsed`] once `limit` has passed since it was first found
    /// pending. Like [`fast_timeout()`](crate::fast_timeout::fast_timeout), a future that is
    /// ready at once needs no clock and no timer.
    pub async fn wait<F: Future>(
        &mut self,
        limit: Duration,
        future: F,
    ) -> Result<F::Output, Elapsed> {
        let mut future = pin!(future);
        let mut deadline = None;
        poll_fn(|cx| {
            if let Poll::Ready(out) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + limit);
            loop {
                // A timer firing after the deadline (the limit got shorter) is not kept.
                if !matches!(&self.armed, Some((fires, _)) if *fires <= deadline) {
                    let rest = deadline.saturating_duration_since(Instant::now());
                    let timer = FastOrTokioTimeout::create(rest).timeout();
                    self.armed = Some((deadline, timer));
                }
                let (_, timer) = self.armed.as_mut().expect("armed above");
                match timer.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => {
                        self.armed = None;
                        if Instant::now() >= deadline {
                            return Poll::Ready(Err(Elapsed));
                        }
                        // an earlier wait's timer: registered again for the rest
                    }
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::sleep;

    #[tokio::test]
    async fn ready_at_once_registers_nothing() {
        let mut kept = KeptTimeout::default();
        assert_eq!(
            kept.wait(Duration::from_secs(1), async { 1 })
                .await
                .unwrap(),
            1
        );
        assert!(kept.armed.is_none());
    }

    #[tokio::test]
    async fn pending_past_the_limit_elapses() {
        let mut kept = KeptTimeout::default();
        let started = Instant::now();
        let out = kept
            .wait(Duration::from_millis(50), sleep(Duration::from_secs(10)))
            .await;
        assert!(out.is_err());
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn the_timer_is_kept_between_waits() {
        let mut kept = KeptTimeout::default();
        let limit = Duration::from_secs(60);
        kept.wait(limit, sleep(Duration::from_millis(5)))
            .await
            .unwrap();
        let first = kept.armed.as_ref().map(|(fires, _)| *fires).unwrap();
        kept.wait(limit, sleep(Duration::from_millis(5)))
            .await
            .unwrap();
        // the second wait's deadline is later: the first timer stays
        assert_eq!(kept.armed.as_ref().map(|(fires, _)| *fires), Some(first));
    }

    #[tokio::test]
    async fn an_earlier_timer_does_not_cut_a_later_wait_short() {
        let mut kept = KeptTimeout::default();
        let limit = Duration::from_millis(1000);
        // the first wait arms a timer for about 1 s from now
        kept.wait(limit, sleep(Duration::from_millis(1)))
            .await
            .unwrap();
        sleep(Duration::from_millis(500)).await;
        // the kept timer fires about 500 ms into this wait; the wait goes on to 1 s
        let started = Instant::now();
        let out = kept.wait(limit, sleep(Duration::from_millis(700))).await;
        assert!(out.is_ok(), "timed out after {:?}", started.elapsed());
        // and a wait longer than its limit still times out at the limit, not later
        let started = Instant::now();
        let out = kept
            .wait(Duration::from_millis(100), sleep(Duration::from_secs(10)))
            .await;
        assert!(out.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_shorter_limit_replaces_a_later_timer() {
        let mut kept = KeptTimeout::default();
        kept.wait(Duration::from_secs(60), sleep(Duration::from_millis(1)))
            .await
            .unwrap();
        let started = Instant::now();
        let out = kept
            .wait(Duration::from_millis(50), sleep(Duration::from_secs(10)))
            .await;
        assert!(out.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
