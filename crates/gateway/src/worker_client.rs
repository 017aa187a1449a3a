//! One reqwest client per worker thread.
//!
//! A pooled connection's driver task runs on the runtime of the worker that opened it. With one
//! client shared by every actix worker, a request on worker A may ride a connection whose task
//! lives on worker B; at SIGTERM an idle B stops at once and takes that connection down, cutting
//! A's in-flight (possibly streaming) response. A client per worker keeps each connection on the
//! runtime of the requests that use it, so draining one worker never touches another's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static CLIENTS: RefCell<HashMap<u64, reqwest::Client>> = RefCell::new(HashMap::new());
}

type Builder = dyn Fn() -> reqwest::ClientBuilder + Send + Sync;

/// Hands out this thread's client, built on first use from the same settings everywhere.
#[derive(Clone)]
pub struct WorkerClient {
    id: u64,
    builder: Arc<Builder>,
}

impl std::fmt::Debug for WorkerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerClient").field("id", &self.id).finish_non_exhaustive()
    }
}

impl WorkerClient {
    /// Builds one client now, so that bad settings fail at start rather than on a request.
    pub fn new(builder: impl Fn() -> reqwest::ClientBuilder + Send + Sync + 'static) -> Result<Self, reqwest::Error> {
        builder().build()?;
        Ok(Self { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), builder: Arc::new(builder) })
    }

    /// The calling thread's client (a cheap handle to its pool).
    pub fn get(&self) -> Result<reqwest::Client, reqwest::Error> {
        CLIENTS.with(|clients| {
            if let Some(client) = clients.borrow().get(&self.id) {
                return Ok(client.clone());
            }
            let client = (self.builder)().build()?;
            clients.borrow_mut().insert(self.id, client.clone());
            Ok(client)
        })
    }
}

impl Drop for WorkerClient {
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
    }
}
