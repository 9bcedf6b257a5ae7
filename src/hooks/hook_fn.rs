//! What a hook is: an async fn or method taking the per-connection value and a [`Context`],
//! returning a [`Status`] or nothing; and how the builder stores hooks of many types.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use super::context::Context;
use crate::proto::ReplyCode;
use crate::session::Error;

/// What a hook tells the MTA about the event it handled (libmilter's `SMFIS_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Go on (`SMFIS_CONTINUE`).
    Continue,
    /// Accept the message (at connect or HELO: the connection) and call no more hooks for
    /// it (`SMFIS_ACCEPT`).
    Accept,
    /// Reject: the message (at connect or HELO: the connection; at RCPT: that recipient;
    /// at an unknown command: that command) with the MTA's default 5xx reply, or with the
    /// reply set by [`Context::set_reply`] when it is a 5xx one (`SMFIS_REJECT`).
    Reject,
    /// Fail temporarily, like [`Status::Reject`] with a 4xx reply (`SMFIS_TEMPFAIL`).
    Tempfail,
    /// Accept and silently drop the whole message (`SMFIS_DISCARD`).
    Discard,
    /// Refuse with this reply; its class decides between reject and tempfail.
    Reply(ReplyCode),
    /// From a body hook: send no more body chunks, go on to end of message (`SMFIS_SKIP`);
    /// elsewhere the same as [`Status::Continue`].
    Skip,
}

/// What a hook may return: [`Status`] (the hook answers its event), `()` (it never does: the
/// event is negotiated as not answered, `NR_*`), or a `Result` of either (an error gets the
/// connection's error reply, tempfail by default).
pub trait HookResult: Send + 'static {
    /// Whether the hook can answer its event.
    const ANSWERS: bool;

    /// The status, or the error the hook failed with.
    fn into_status(self) -> Result<Status, Error>;
}

impl HookResult for Status {
    const ANSWERS: bool = true;

    fn into_status(self) -> Result<Status, Error> {
        Ok(self)
    }
}

impl HookResult for () {
    const ANSWERS: bool = false;

    fn into_status(self) -> Result<Status, Error> {
        Ok(Status::Continue)
    }
}

impl<T, E> HookResult for Result<T, E>
where
    T: HookResult,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    const ANSWERS: bool = T::ANSWERS;

    fn into_status(self) -> Result<Status, Error> {
        match self {
            Ok(result) => result.into_status(),
            Err(error) => Err(match error.into().downcast::<Error>() {
                Ok(own) => *own,
                Err(other) => Error::Filter(other),
            }),
        }
    }
}

/// A hook taking no argument: `async fn(&mut S, &mut Context<'_>) -> R`.
///
/// Implemented for every such function and method, so users never name it; it exists
/// because a plain closure bound cannot say that the future borrows its arguments.
pub trait Hook<'a, S: 'a>: Send + Sync + 'static {
    /// What the hook returns.
    type Output: HookResult;
    /// The future the hook returns.
    type Future: Future<Output = Self::Output> + Send + 'a;

    /// Calls the hook.
    fn call(&self, state: &'a mut S, ctx: &'a mut Context<'a>) -> Self::Future;
}

impl<'a, S: 'a, F, Fut> Hook<'a, S> for F
where
    F: Fn(&'a mut S, &'a mut Context<'a>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'a,
    Fut::Output: HookResult,
{
    type Output = Fut::Output;
    type Future = Fut;

    fn call(&self, state: &'a mut S, ctx: &'a mut Context<'a>) -> Fut {
        self(state, ctx)
    }
}

/// A hook taking one argument (the client, a name, an address, a header, a chunk):
/// `async fn(&mut S, &mut Context<'_>, A) -> R`. Implemented for every such function.
pub trait HookWith<'a, S: 'a, A>: Send + Sync + 'static {
    /// What the hook returns.
    type Output: HookResult;
    /// The future the hook returns.
    type Future: Future<Output = Self::Output> + Send + 'a;

    /// Calls the hook.
    fn call(&self, state: &'a mut S, ctx: &'a mut Context<'a>, arg: A) -> Self::Future;
}

impl<'a, S: 'a, A, F, Fut> HookWith<'a, S, A> for F
where
    F: Fn(&'a mut S, &'a mut Context<'a>, A) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'a,
    Fut::Output: HookResult,
{
    type Output = Fut::Output;
    type Future = Fut;

    fn call(&self, state: &'a mut S, ctx: &'a mut Context<'a>, arg: A) -> Fut {
        self(state, ctx, arg)
    }
}

pub(crate) type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<Status, Error>> + Send + 'a>>;

/// A registered hook with its type erased, so one builder holds hooks of any types.
pub(crate) trait Erased<S, A>: Send + Sync {
    fn call<'a>(&'a self, state: &'a mut S, ctx: &'a mut Context<'a>, arg: A) -> HookFuture<'a>;
}

/// A [`HookWith`] behind [`Erased`].
pub(crate) struct WithArg<H, R>(pub(crate) H, pub(crate) PhantomData<fn() -> R>);

impl<S, A, H, R> Erased<S, A> for WithArg<H, R>
where
    H: for<'a> HookWith<'a, S, A, Output = R>,
    R: HookResult,
    A: Send + 'static,
{
    fn call<'a>(&'a self, state: &'a mut S, ctx: &'a mut Context<'a>, arg: A) -> HookFuture<'a> {
        let future = self.0.call(state, ctx, arg);
        Box::pin(async move { future.await.into_status() })
    }
}

/// A [`Hook`] behind [`Erased`] (its argument is `()`).
pub(crate) struct NoArg<H, R>(pub(crate) H, pub(crate) PhantomData<fn() -> R>);

impl<S, H, R> Erased<S, ()> for NoArg<H, R>
where
    H: for<'a> Hook<'a, S, Output = R>,
    R: HookResult,
{
    fn call<'a>(&'a self, state: &'a mut S, ctx: &'a mut Context<'a>, (): ()) -> HookFuture<'a> {
        let future = self.0.call(state, ctx);
        Box::pin(async move { future.await.into_status() })
    }
}
