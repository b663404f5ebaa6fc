//! What a running node tells about itself. [`status`] builds one typed
//! snapshot ([`NodeStatus`](status::NodeStatus)) that the status page,
//! `/status.json`, [`NodeHandle::status`](crate::NodeHandle::status) and
//! tests all read; [`ring`] is the agreed ring alone (`/v1/ring`); metrics
//! belong here too.

pub(crate) mod ring;
pub(crate) mod status;
