//! How a filter plugs in: a plain `async fn`, or a type implementing [`Filter`].

use std::future::Future;

use async_trait::async_trait;

use super::api::Session;
use super::error::Error;
use super::verdict::Verdict;
use crate::proto::Needs;

/// A mail filter: called once per message with that message's [`Session`].
///
/// Implement it for filters that keep state or declare their needs; a plain
/// `async fn(&mut Session) -> Result<Verdict, E>` works through [`FnFilter`] without one.
///
/// ```
/// use async_milter::{Filter, Needs, Session, Verdict, Error};
/// use async_milter::proto::{Actions, Events};
///
/// struct Tagger { tag: String }
///
/// #[async_trait::async_trait]
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
#[async_trait]
pub trait Filter: Send + Sync + 'static {
    /// What the filter needs from the MTA; drives negotiation. The default,
    /// [`Needs::everything`], asks for every event, answer and action the MTA offers;
    /// declaring only what the filter uses saves the MTA sending and waiting.
    fn needs(&self) -> Needs {
        Needs::everything()
    }

    /// Looks at one message and decides.
    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error>;
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

/// Adapts a plain `async fn` into a [`Filter`]; its needs are [`Needs::everything`] unless
/// declared with [`FnFilter::with_needs`].
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

#[async_trait]
impl<F> Filter for FnFilter<F>
where
    F: for<'a> FilterFn<'a>,
{
    fn needs(&self) -> Needs {
        self.needs.clone()
    }

    async fn filter(&self, session: &mut Session) -> Result<Verdict, Error> {
        self.function.call(session).await.map_err(|error| {
            let boxed = error.into();
            match boxed.downcast::<Error>() {
                Ok(own) => *own,
                Err(other) => Error::Filter(other),
            }
        })
    }
}
