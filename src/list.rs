//! Several filters on one connection.

use std::sync::Arc;

use crate::proto::Needs;
use crate::session::{Error, Filter, Member, Misuse, Session, Verdict};

/// Several filters served on one MTA connection, for sites that want several policies in
/// one MTA slot.
///
/// Each filter runs as its own session and sees every event exactly once, as the MTA sent
/// it; they run side by side on the connection's task, so a filter waiting on a slow lookup
/// delays the answer to an event only as long as the slowest filter that still wants that
/// event. The MTA is asked for the union of their [`Needs`]: an event is sent if any
/// filter awaits it and gets a reply if any may answer it.
///
/// **Answers** merge per event: any refusal (reject, tempfail, discard, a reply code,
/// shutdown) beats continue, the most severe winning (tempfail < reject < shutdown;
/// discard below both; the first in list order on a tie); a recipient refused by one filter
/// is refused; `Accept` from one filter ends that filter's part in the message while the
/// others go on, and the message is accepted outright only when all accept. `Accept` at
/// CONNECT or HELO takes that filter out for the rest of the SMTP session (it is not called
/// for later messages, and counts as accepting), as it would take a single filter out.
///
/// **Edits** are checked against each filter's own declared actions when queued, and merged
/// at end of message in list order over the message as the MTA sent it: headers added or
/// inserted by every filter are all sent; when two filters change or delete the same
/// header, the later one in the list decides (its change or its delete is what the MTA
/// applies); a replaced body, a changed sender and a quarantine reason come from the last
/// filter in the list that set them; recipients added or removed by any filter are all
/// applied. A filter's edits are lost only when the message is refused or discarded.
///
/// **Faults**: a filter that fails or panics gets
/// [`ConnectionConfig::error_verdict`](crate::ConnectionConfig::error_verdict) for the
/// message (tempfail by default, which then wins the merge); its own edits are dropped, the
/// others' are kept (they apply when the error verdict lets the message through).
///
/// Log lines about a verdict name the filter that gave it.
///
/// ```no_run
/// use async_milter::{Error, FilterList, Server, Session, Verdict};
///
/// async fn policy(session: &mut Session) -> Result<Verdict, Error> {
///     session.envelope_from().await?;
///     Ok(Verdict::Continue)
/// }
///
/// async fn tagger(session: &mut Session) -> Result<Verdict, Error> {
///     session.end_of_message().await?;
///     session.add_header("X-Tagged", "yes")?;
///     Ok(Verdict::Accept)
/// }
///
/// # async_std::task::block_on(async {
/// let filters = FilterList::new().with("policy", policy).with("tagger", tagger);
/// Server::bind("inet:7357@127.0.0.1").await?.serve(filters).await
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct FilterList {
    members: Vec<Member>,
}

impl FilterList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `filter` under `name` (used in log lines). A list added to a list adds its
    /// members, named `outer/inner`.
    pub fn with(mut self, name: &str, filter: impl Filter) -> Self {
        for mut member in filter.into_members() {
            member.name = Some(match &member.name {
                Some(inner) => Arc::from(format!("{name}/{inner}")),
                None => Arc::from(name),
            });
            self.members.push(member);
        }
        self
    }

    /// How many filters the list holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the list holds no filter.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl Filter for FilterList {
    fn needs(&self) -> Needs {
        self.members
            .iter()
            .map(|member| member.filter.needs())
            .reduce(|all, needs| all.union(&needs))
            .unwrap_or_else(Needs::new)
    }

    /// A list is run by the connection, each member on its own session; called directly
    /// it can only refuse.
    async fn filter(&self, _session: &mut Session) -> Result<Verdict, Error> {
        Err(Misuse::ListCalledDirectly.into())
    }

    fn into_members(self) -> Vec<Member> {
        self.members
    }
}
