//! The bounded queue of `HttpTask`s between the two halves of an HTTP/1 proxy session.
//!
//! pinlb patch: `proxy_1to1` joins its downstream and upstream halves in one task and
//! passes tasks between them through two `tokio::sync::mpsc` channels per request. Those
//! channels are built for many producers on many threads (a semaphore, a block list,
//! atomic wakers, cooperative budgeting); here each end has one owner and both owners are
//! polled by the same task, so the queue is a `VecDeque` under an uncontended mutex. The
//! methods mirror the `mpsc` ones `proxy_h1.rs` uses, with the same meaning: `send`,
//! `reserve` and `try_reserve` fail once the receiver is gone, `recv` returns what is
//! queued and then `None` once the sender is gone, and a `Permit` holds one slot until it
//! is used or dropped.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::mem::ManuallyDrop;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// Creates a queue that holds at most `capacity` tasks (sent plus reserved).
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::with_capacity(capacity),
            reserved: 0,
            capacity,
            sender_alive: true,
            receiver_alive: true,
            receiver_waker: None,
            sender_wakers: Vec::new(),
        }),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while the lock is held; a poisoned lock still holds a valid queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct State<T> {
    queue: VecDeque<T>,
    reserved: usize,
    capacity: usize,
    sender_alive: bool,
    receiver_alive: bool,
    receiver_waker: Option<Waker>,
    // `Sender` methods take `&self`, so more than one of its futures may wait at once.
    sender_wakers: Vec<Waker>,
}

impl<T> State<T> {
    fn has_room(&self) -> bool {
        self.queue.len() + self.reserved < self.capacity
    }

    fn wait_for_room(&mut self, cx: &Context<'_>) {
        if !self.sender_wakers.iter().any(|w| w.will_wake(cx.waker())) {
            self.sender_wakers.push(cx.waker().clone());
        }
    }
}

/// The receiver is gone: nothing sent can be received any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task pipe closed")
    }
}

impl std::error::Error for Closed {}

/// Why [Sender::try_reserve] gave no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryReserveError {
    Full,
    Closed,
}

impl fmt::Display for TryReserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("task pipe full"),
            Self::Closed => f.write_str("task pipe closed"),
        }
    }
}

impl std::error::Error for TryReserveError {}

/// The sending end; not `Clone`, the queue has one producer.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Waits for room, then queues `value`; fails (dropping `value`) once the receiver is gone.
    pub(crate) async fn send(&self, value: T) -> Result<(), Closed> {
        let permit = self.reserve().await?;
        permit.send(value);
        Ok(())
    }

    /// Waits for room and holds one slot for a later [Permit::send].
    pub(crate) async fn reserve(&self) -> Result<Permit<'_, T>, Closed> {
        poll_fn(|cx| self.poll_reserve(cx)).await
    }

    fn poll_reserve(&self, cx: &Context<'_>) -> Poll<Result<Permit<'_, T>, Closed>> {
        let mut state = self.shared.lock();
        if !state.receiver_alive {
            return Poll::Ready(Err(Closed));
        }
        if state.has_room() {
            state.reserved += 1;
            return Poll::Ready(Ok(Permit { sender: self }));
        }
        state.wait_for_room(cx);
        Poll::Pending
    }

    /// Holds one slot if there is room now.
    pub(crate) fn try_reserve(&self) -> Result<Permit<'_, T>, TryReserveError> {
        let mut state = self.shared.lock();
        if !state.receiver_alive {
            return Err(TryReserveError::Closed);
        }
        if !state.has_room() {
            return Err(TryReserveError::Full);
        }
        state.reserved += 1;
        Ok(Permit { sender: self })
    }

    /// Whether the receiver is gone.
    pub(crate) fn is_closed(&self) -> bool {
        !self.shared.lock().receiver_alive
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.lock();
            state.sender_alive = false;
            state.receiver_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// One slot held in the queue: [Permit::send] fills it, dropping the permit gives it back.
pub(crate) struct Permit<'a, T> {
    sender: &'a Sender<T>,
}

impl<T> Permit<'_, T> {
    /// Queues `value` in the held slot (or drops it if the receiver has gone meanwhile).
    pub(crate) fn send(self, value: T) {
        let permit = ManuallyDrop::new(self);
        let mut state = permit.sender.shared.lock();
        state.reserved -= 1;
        if !state.receiver_alive {
            drop(state);
            drop(value);
            return;
        }
        state.queue.push_back(value);
        let waker = state.receiver_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        let wakers = {
            let mut state = self.sender.shared.lock();
            state.reserved -= 1;
            std::mem::take(&mut state.sender_wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl<T> fmt::Debug for Permit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}

/// The receiving end.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next task; `None` once the queue is empty and the sender is gone.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &Context<'_>) -> Poll<Option<T>> {
        let mut state = self.shared.lock();
        if let Some(value) = state.queue.pop_front() {
            let wakers = std::mem::take(&mut state.sender_wakers);
            drop(state);
            wakers.into_iter().for_each(Waker::wake);
            return Poll::Ready(Some(value));
        }
        if !state.sender_alive {
            return Poll::Ready(None);
        }
        match &state.receiver_waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.receiver_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next task if one is queued now.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let mut state = self.shared.lock();
        let value = state.queue.pop_front()?;
        let wakers = std::mem::take(&mut state.sender_wakers);
        drop(state);
        wakers.into_iter().for_each(Waker::wake);
        Some(value)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (queued, wakers) = {
            let mut state = self.shared.lock();
            state.receiver_alive = false;
            (
                std::mem::take(&mut state.queue),
                std::mem::take(&mut state.sender_wakers),
            )
        };
        // Tasks are dropped outside the lock.
        drop(queued);
        wakers.into_iter().for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;

    fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        fut.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test]
    async fn queued_values_arrive_in_order_then_none_after_sender_drop() {
        let (tx, mut rx) = channel::<u32>(4);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn capacity_counts_queued_and_reserved_slots() {
        let (tx, mut rx) = channel::<u32>(2);
        let permit = tx.try_reserve().unwrap();
        tx.send(1).await.unwrap();
        assert_eq!(tx.try_reserve().unwrap_err(), TryReserveError::Full);
        // A dropped permit gives its slot back.
        drop(permit);
        tx.try_reserve().unwrap().send(2);
        assert_eq!(tx.try_reserve().unwrap_err(), TryReserveError::Full);
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.try_recv(), None);
    }

    #[tokio::test]
    async fn full_sender_waits_until_the_receiver_takes_one() {
        let (tx, mut rx) = channel::<u32>(1);
        tx.send(1).await.unwrap();
        let mut second = pin!(tx.send(2));
        assert!(poll_once(second.as_mut()).is_pending());
        assert_eq!(rx.recv().await, Some(1));
        second.await.unwrap();
        assert_eq!(rx.recv().await, Some(2));
    }

    #[tokio::test]
    async fn senders_fail_once_the_receiver_is_gone() {
        let (tx, rx) = channel::<u32>(1);
        tx.send(1).await.unwrap();
        let mut waiting = pin!(tx.reserve());
        assert!(poll_once(waiting.as_mut()).is_pending());
        drop(rx);
        assert_eq!(waiting.await.unwrap_err(), Closed);
        assert!(tx.is_closed());
        assert_eq!(tx.send(2).await.unwrap_err(), Closed);
        assert_eq!(tx.try_reserve().unwrap_err(), TryReserveError::Closed);
    }

    #[tokio::test]
    async fn receiver_waiting_in_another_task_is_woken() {
        let (tx, mut rx) = channel::<u32>(1);
        let receiver = tokio::spawn(async move { (rx.recv().await, rx.recv().await) });
        tokio::task::yield_now().await;
        tx.send(7).await.unwrap();
        drop(tx);
        assert_eq!(receiver.await.unwrap(), (Some(7), None));
    }
}
