//! One HTTP client (a connection pool) per worker thread: the proxy's upstream client, and the
//! verifier's reqwest client for JWKS and introspection.
//!
//! A pooled connection's driver task runs on the runtime of the worker that opened it. With one
//! client shared by every actix worker, a request on worker A may ride a connection whose task
//! lives on worker B; at SIGTERM an idle B stops at once and takes that connection down, cutting
//! A's in-flight (possibly streaming) response. A client per worker keeps each connection on the
//! runtime of the requests that use it, so draining one worker never touches another's.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // each owner's client, of the type it was made with (an owner never looks up another's id)
    static CLIENTS: RefCell<HashMap<u64, Box<dyn Any>>> = RefCell::new(HashMap::new());
}

type Builder<C, E> = dyn Fn() -> Result<C, E> + Send + Sync;

/// Hands out this thread's client, built on first use from the same settings everywhere.
pub struct WorkerClient<C = reqwest::Client, E = reqwest::Error> {
    id: u64,
    builder: Arc<Builder<C, E>>,
}

impl<C, E> Clone for WorkerClient<C, E> {
    fn clone(&self) -> Self {
        Self { id: self.id, builder: Arc::clone(&self.builder) }
    }
}

impl<C, E> std::fmt::Debug for WorkerClient<C, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerClient").field("id", &self.id).finish_non_exhaustive()
    }
}

impl WorkerClient {
    /// reqwest clients from these settings. Builds one now, so that bad settings fail at start
    /// rather than on a request.
    pub fn new(builder: impl Fn() -> reqwest::ClientBuilder + Send + Sync + 'static) -> Result<Self, reqwest::Error> {
        Self::try_with(move || builder().build())
    }
}

impl<C: 'static, E> WorkerClient<C, E> {
    /// Clients made by `builder`. Builds one now, so that bad settings fail at start.
    pub fn try_with(builder: impl Fn() -> Result<C, E> + Send + Sync + 'static) -> Result<Self, E> {
        builder()?;
        Ok(Self { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), builder: Arc::new(builder) })
    }

    /// Calls `f` with the calling thread's client, built on first use; nothing is cloned.
    pub fn with<R>(&self, f: impl FnOnce(&C) -> R) -> Result<R, E> {
        CLIENTS.with(|clients| {
            if let Some(client) = clients.borrow().get(&self.id).and_then(|c| c.downcast_ref::<C>()) {
                return Ok(f(client));
            }
            let client = (self.builder)()?;
            let out = f(&client);
            clients.borrow_mut().insert(self.id, Box::new(client));
            Ok(out)
        })
    }
}

impl<C: Clone + 'static, E> WorkerClient<C, E> {
    /// The calling thread's client (a cheap handle to its pool).
    pub fn get(&self) -> Result<C, E> {
        self.with(C::clone)
    }
}

impl<C, E> Drop for WorkerClient<C, E> {
    fn drop(&mut self) {
        // the last handle on this thread: forget this thread's client (others go with their threads)
        if Arc::strong_count(&self.builder) == 1 {
            let _ = CLIENTS.try_with(|clients| clients.borrow_mut().remove(&self.id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_per_thread_and_per_owner() {
        let a = WorkerClient::new(reqwest::Client::builder).expect("client");
        let b = WorkerClient::new(reqwest::Client::builder).expect("client");
        assert_ne!(a.id, b.id);
        a.get().expect("built");
        a.get().expect("reused");
        b.get().expect("built");
        assert_eq!(CLIENTS.with(|c| c.borrow().len()), 2);
        let other = a.clone();
        std::thread::spawn(move || {
            other.get().expect("built on this thread");
            assert_eq!(CLIENTS.with(|c| c.borrow().len()), 1, "a thread has its own clients");
        })
        .join()
        .expect("thread");
        drop(b);
        assert_eq!(CLIENTS.with(|c| c.borrow().len()), 1);
        // clients of another type live beside them
        let other_kind = WorkerClient::<String, std::convert::Infallible>::try_with(|| Ok("pool".to_owned()));
        let Ok(other_kind) = other_kind;
        assert_eq!(other_kind.with(String::len), Ok(4));
        assert_eq!(CLIENTS.with(|c| c.borrow().len()), 2);
        a.get().expect("still a's own");
    }
}
