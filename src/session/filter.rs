//! How a filter plugs in: a plain `async fn`, a closure through [`filter_fn`], or a type
//! implementing [`Filter`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::api::{Finished, Session};
use super::error::Error;
use super::verdict::Verdict;
use crate::proto::Needs;

/// A mail filter: called once per message with that message's [`Session`].
///
/// Implement it for filters with configuration or declared needs (write `async fn filter`,
/// no macro needed); a plain `async fn(&mut Session) -> Result<Verdict, E>` is a filter
/// as it is, and [`FnFilter`] gives it declared needs.
///
/// ```
/// use async_milter::{Filter, Needs, Session, Verdict, Error};
/// use async_milter::proto::{Actions, Events};
///
/// struct Tagger { tag: String }
///
/// impl Filter for Tagger {
///     fn needs(&self) -> Needs {
///         // Reads the headers, answers nothing before end of message, adds a header.
///         Needs::new()
///             .events(Events::HEADER | Events::EOH)
///             .actions(Actions::ADD_HEADERS)
///     }
///
///     async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
///         session.end_of_message().await?;
///         session.add_header("X-Tag", &self.tag)?;
///         Ok(Verdict::Accept)
///     }
/// }
/// ```
pub trait Filter: Send + Sync + 'static {
    /// What the filter needs from the MTA; drives negotiation. The default,
    /// [`Needs::everything`], asks for every event, answer and action the MTA offers;
    /// declaring only what the filter uses saves the MTA sending and waiting.
    fn needs(&self) -> Needs {
        Needs::everything()
    }

    /// Looks at one message and decides.
    fn filter(&self, session: &mut Session) -> impl Future<Output = Result<Verdict, Error>> + Send;

    /// The filters this one stands for on a connection: itself, or a list's members.
    #[doc(hidden)]
    fn into_members(self) -> Vec<Member>
    where
        Self: Sized,
    {
        vec![Member::new(None, self)]
    }
}

/// One filter of a connection, type-erased so that a list can hold filters of different
/// types. Made by the library; not part of the public API.
#[doc(hidden)]
#[derive(Clone)]
pub struct Member {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) filter: Arc<dyn DynFilter>,
}

impl Member {
    pub(crate) fn new<F: Filter>(name: Option<Arc<str>>, filter: F) -> Self {
        Self {
            name,
            filter: Arc::new(filter),
        }
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// [`Filter`] in a form that can sit behind `dyn`: the future boxed.
pub(crate) trait DynFilter: Send + Sync + 'static {
    fn needs(&self) -> Needs;
    /// One message's call, owning its session and handing it back finished: one
    /// allocation for the filter's future and the session's place together.
    fn call_owned(self: Arc<Self>, session: Session) -> BoxCallFuture;
}

/// A filter call that owns its session, as the connection runs it.
pub(crate) type BoxCallFuture =
    Pin<Box<dyn Future<Output = (Result<Verdict, Error>, Finished)> + Send + 'static>>;

impl<F: Filter> DynFilter for F {
    fn needs(&self) -> Needs {
        Filter::needs(self)
    }

    fn call_owned(self: Arc<Self>, mut session: Session) -> BoxCallFuture {
        Box::pin(async move {
            let result = self.filter(&mut session).await;
            (result, session.finish())
        })
    }
}

/// Every `async fn(&mut Session) -> Result<Verdict, E>` is a filter that asks for every
/// event and action.
impl<F> Filter for F
where
    F: for<'a> FilterFn<'a>,
{
    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        self.call(session).await.map_err(into_error)
    }
}

/// A boxed filter future, the return type [`filter_fn`] closures give.
pub type BoxFilterFuture<'a> = Pin<Box<dyn Future<Output = Result<Verdict, Error>> + Send + 'a>>;

/// Makes a closure a filter. A closure's future borrows the session, which Rust can only
/// express for closures whose return type names the borrow, hence `Box::pin`:
///
/// ```
/// use async_milter::{filter_fn, Session};
///
/// let tag = String::from("[EXTERNAL]");
/// let filter = filter_fn(move |session: &mut Session| {
///     let tag = tag.clone();
///     Box::pin(async move {
///         session.end_of_message().await?;
///         session.add_header("X-Tag", &tag)?;
///         Ok(async_milter::Verdict::Accept)
///     })
/// });
/// # fn is_filter(_: impl async_milter::Filter) {}
/// # is_filter(filter);
/// ```
pub fn filter_fn<F>(function: F) -> F
where
    F: for<'a> Fn(&'a mut Session) -> BoxFilterFuture<'a> + Send + Sync + 'static,
{
    function
}

fn into_error(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    match error.into().downcast::<Error>() {
        Ok(own) => *own,
        Err(other) => Error::Filter(other),
    }
}

/// A function usable as a filter: `async fn(&mut Session) -> Result<Verdict, E>`.
///
/// Implemented for every such function, so users never name it; it exists because a plain
/// closure bound cannot say that the future borrows the session.
pub trait FilterFn<'a>: Send + Sync + 'static {
    /// The filter's error type.
    type Error: Into<Box<dyn std::error::Error + Send + Sync>>;
    /// The future the function returns.
    type Future: Future<Output = Result<Verdict, Self::Error>> + Send + 'a;

    /// Calls the function.
    fn call(&self, session: &'a mut Session) -> Self::Future;
}

impl<'a, F, Fut, E> FilterFn<'a> for F
where
    F: Fn(&'a mut Session) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Verdict, E>> + Send + 'a,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Error = E;
    type Future = Fut;

    fn call(&self, session: &'a mut Session) -> Fut {
        self(session)
    }
}

/// A plain `async fn` (or [`filter_fn`] closure) with declared needs; without them it asks
/// for [`Needs::everything`].
#[derive(Debug, Clone)]
pub struct FnFilter<F> {
    function: F,
    needs: Needs,
}

impl<F> FnFilter<F>
where
    F: for<'a> FilterFn<'a>,
{
    /// Wraps `function`, asking for every event and action ([`Needs::everything`]).
    pub fn new(function: F) -> Self {
        Self {
            function,
            needs: Needs::everything(),
        }
    }

    /// Declares what the function needs, as [`Filter::needs`] would.
    #[must_use]
    pub fn with_needs(mut self, needs: Needs) -> Self {
        self.needs = needs;
        self
    }
}

impl<F> Filter for FnFilter<F>
where
    F: for<'a> FilterFn<'a>,
{
    fn needs(&self) -> Needs {
        self.needs.clone()
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        self.function.call(session).await.map_err(into_error)
    }
}
