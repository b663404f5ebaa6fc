//! How the disk engine is tuned, and what each durability choice risks.

use std::str::FromStr;
use std::time::Duration;

/// When acknowledged writes reach stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// A write is acknowledged only after it is fsynced. Concurrent writers
    /// share one fsync (group commit). Nothing acknowledged is lost to a
    /// process crash, an OS crash or a power cut.
    #[default]
    Always,
    /// A write is acknowledged once handed to the operating system; the
    /// journal is fsynced every interval. A process crash loses nothing; an
    /// OS crash or power cut loses up to one interval of acknowledged writes.
    Periodic(Duration),
    /// A write is acknowledged once handed to the operating system and never
    /// synced on purpose (the OS writes back when it likes, on Linux within
    /// about 30 s). A process crash loses nothing; an OS crash or power cut
    /// loses whatever the OS had not yet written back, possibly much.
    /// (Under `periodic` and `none` a write that replaces a large value still
    /// syncs, so that the old value's file is removed only once nothing
    /// durable names it.)
    None,
}

impl SyncPolicy {
    /// The interval `periodic` means when none is given.
    pub const DEFAULT_PERIOD: Duration = Duration::from_secs(1);
}

/// A `--sync` value that is not `always`, `periodic`, `periodic:<ms>` or
/// `none`.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("unknown sync policy {0:?}: expected always, periodic, periodic:<milliseconds> or none")]
pub struct UnknownSyncPolicy(pub String);

impl FromStr for SyncPolicy {
    type Err = UnknownSyncPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(Self::Always),
            "none" => Ok(Self::None),
            "periodic" => Ok(Self::Periodic(Self::DEFAULT_PERIOD)),
            other => other
                .strip_prefix("periodic:")
                .and_then(|ms| ms.parse::<u64>().ok())
                .filter(|&ms| ms > 0)
                .map(|ms| Self::Periodic(Duration::from_millis(ms)))
                .ok_or_else(|| UnknownSyncPolicy(other.to_string())),
        }
    }
}

/// Settings of a [`DiskStore`](crate::DiskStore).
#[derive(Clone, Debug)]
pub struct DiskOptions {
    pub(crate) sync: SyncPolicy,
    pub(crate) large_value_threshold: usize,
    pub(crate) cache_bytes: u64,
    pub(crate) max_journal_bytes: u64,
    pub(crate) max_memtable_bytes: u64,
}

impl Default for DiskOptions {
    fn default() -> Self {
        Self {
            sync: SyncPolicy::Always,
            large_value_threshold: 1 << 20,
            cache_bytes: 32 << 20,
            max_journal_bytes: 256 << 20,
            max_memtable_bytes: 16 << 20,
        }
    }
}

impl DiskOptions {
    /// The durability policy (default [`SyncPolicy::Always`]).
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.sync = policy;
        self
    }

    /// Values longer than this many bytes go to files beside the engine
    /// (default 1 MiB).
    pub fn large_value_threshold(mut self, bytes: usize) -> Self {
        self.large_value_threshold = bytes;
        self
    }

    /// The engine's block cache (default 32 MiB).
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// How much journal the engine keeps before flushing memtables (default
    /// 256 MiB); small disks need less.
    pub fn max_journal_bytes(mut self, bytes: u64) -> Self {
        self.max_journal_bytes = bytes;
        self
    }

    /// The size at which a memtable is flushed to a table (default 16 MiB).
    pub fn max_memtable_bytes(mut self, bytes: u64) -> Self {
        self.max_memtable_bytes = bytes;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_cli_spellings() {
        assert_eq!("always".parse(), Ok(SyncPolicy::Always));
        assert_eq!("none".parse(), Ok(SyncPolicy::None));
        assert_eq!(
            "periodic".parse(),
            Ok(SyncPolicy::Periodic(Duration::from_secs(1)))
        );
        assert_eq!(
            "periodic:250".parse(),
            Ok(SyncPolicy::Periodic(Duration::from_millis(250)))
        );
        assert!("periodic:0".parse::<SyncPolicy>().is_err());
        assert!("sometimes".parse::<SyncPolicy>().is_err());
    }
}
