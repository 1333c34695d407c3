//! Watching a resolved view: the access-checked side of the kernel's watch
//! hub (`crate::kernel::watch`), for watch streams and long polls.

use std::sync::Arc;

use cairn_model::Revision;
use tokio::sync::watch;

use crate::config::Config;
use crate::identity::access::check_resolve;
use crate::identity::auth::Principal;
use crate::kernel::state::ResolvedView;
use crate::kernel::watch::ViewEvent;
use crate::Result;

impl Config<'_> {
    /// The current view of (app, env) and a receiver that moves whenever a
    /// committed revision changes it (access checked like [`Config::resolve`]).
    pub fn watch_view(
        &self,
        who: &Principal,
        app: &str,
        env: &str,
    ) -> Result<(Arc<ResolvedView>, watch::Receiver<Revision>)> {
        check_resolve(who, app, env)?;
        self.kernel.watch(app, env)
    }

    /// The events of (app, env) after revision `after`, if this replica still
    /// holds all of them (it keeps the last few per watched view).
    pub fn view_events_after(
        &self,
        app: &str,
        env: &str,
        after: Revision,
    ) -> Option<Vec<Arc<ViewEvent>>> {
        self.kernel.view_events_after(app, env, after)
    }

    /// The event taking a client at `since` to the current `view`, diffed
    /// against the view as of `since` (read from the store; if that fails,
    /// every key is listed as changed).
    pub async fn catch_up_event(
        &self,
        who: &Principal,
        view: &ResolvedView,
        since: Revision,
    ) -> ViewEvent {
        match self.resolve_at(who, &view.app, &view.env, since).await {
            Ok(old) => ViewEvent::between(since, Some(&old.values), view),
            Err(_) => ViewEvent::between(since, None, view),
        }
    }
}
