//! The actix plumbing every middleware of the gateway shares: a policy says in one async function
//! what happens to a request around the wrapped service ([`Around`]), and [`Middleware`] makes that
//! an actix `Transform` and `Service`.
//!
//! It costs what a hand-written middleware costs: one boxed future per request and nothing else.
//! Each worker gets its own copy of the policy, so a request clones an `Rc`, not an `Arc` shared
//! by every worker's thread. (actix-web's `middleware::from_fn` would box the wrapped service's
//! future as well: one more allocation on every protected request.)

use std::future::{Future, Ready, ready};
use std::rc::Rc;

use actix_web::Error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use futures_util::future::LocalBoxFuture;

/// What a middleware does with a request: answer it itself (the right body) or pass it to
/// `next` (the left body), before and after as it likes.
pub trait Around: Clone + 'static {
    fn around<S, B>(
        self: Rc<Self>,
        req: ServiceRequest,
        next: Next<S>,
    ) -> impl Future<Output = Result<ServiceResponse<EitherBody<B>>, Error>> + 'static
    where
        S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
        B: MessageBody + 'static;
}

/// The wrapped service, to call at most once.
pub struct Next<S>(Rc<S>);

impl<S: Service<ServiceRequest>> Next<S> {
    pub fn call(self, req: ServiceRequest) -> S::Future {
        self.0.call(req)
    }
}

/// The middleware factory of a policy, what `.wrap()` takes; cheap to clone.
#[derive(Debug)]
pub struct Middleware<P>(pub(crate) std::sync::Arc<P>);

impl<P> Clone for Middleware<P> {
    fn clone(&self) -> Self {
        Self(std::sync::Arc::clone(&self.0))
    }
}

impl<S, B, P> Transform<S, ServiceRequest> for Middleware<P>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    P: Around,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = MiddlewareService<S, P>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        // once per worker: the worker's own copy, so that requests clone an `Rc`
        ready(Ok(MiddlewareService { service: Rc::new(service), policy: Rc::new(P::clone(&self.0)) }))
    }
}

/// The middleware service (see [`Middleware`]).
pub struct MiddlewareService<S, P> {
    service: Rc<S>,
    policy: Rc<P>,
}

impl<S, B, P> Service<ServiceRequest> for MiddlewareService<S, P>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    P: Around,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        Box::pin(Rc::clone(&self.policy).around(req, Next(Rc::clone(&self.service))))
    }
}
