//! A member's own comings and goings: finishing a join once its data has
//! arrived ([`join`]), and leaving with a hand-off of every key
//! ([`leave`]). Joining through a seed and checking on restart that this
//! node was not removed are the cluster's (`mydht-cluster`); what moves
//! the data is `movement`.

pub(crate) mod autoremove;
pub(crate) mod gossip;
pub(crate) mod join;
pub(crate) mod leave;
