//! The Redis keys of one queue. Every key of queue `q` starts with `fp:{q}:`: the braces are a
//! Redis Cluster hash tag, so all of a queue's keys live in one slot and the Lua scripts may
//! touch several of them at once.

/// The consumer group every agent of a queue reads the task stream through.
pub(crate) const GROUP: &str = "agents";

/// Key names for one queue.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys of `queue`; `Err` names what is wrong with the name.
    pub(crate) fn new(queue: &str) -> Result<Keys, String> {
        if queue.is_empty()
            || queue
                .chars()
                .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "invalid queue name {queue:?}: it must be non-empty, without braces or whitespace"
            ));
        }
        Ok(Keys {
            prefix: format!("fp:{{{queue}}}:"),
        })
    }

    /// The stream of submitted tasks (consumer group [`GROUP`]).
    pub(crate) fn tasks(&self) -> String {
        format!("{}tasks", self.prefix)
    }

    /// Hash: task id → the agent running it (set when an agent starts a task).
    pub(crate) fn running(&self) -> String {
        format!("{}running", self.prefix)
    }

    /// One client's reply stream: `Started` and `Done` messages for its tasks.
    pub(crate) fn reply(&self, client: &str) -> String {
        format!("{}reply:{client}", self.prefix)
    }

    /// A client's liveness: set while its pool lives (refreshed with the reply stream's
    /// expiry, deleted when the pool is done). Agents write replies only while it exists.
    pub(crate) fn client(&self, client: &str) -> String {
        format!("{}client:{client}", self.prefix)
    }

    /// Marks a task cancelled after an agent read it but before it started.
    pub(crate) fn cancel(&self, task: &str) -> String {
        format!("{}cancel:{task}", self.prefix)
    }

    /// The prefix of the agents' control streams (kill requests); see [`Keys::control`].
    pub(crate) fn control_prefix(&self) -> String {
        format!("{}control:", self.prefix)
    }

    /// One agent's control stream.
    pub(crate) fn control(&self, agent: &str) -> String {
        format!("{}{agent}", self.control_prefix())
    }

    /// The prefix every key of the queue starts with (`fp:{q}:`).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A key of the queue that never exists: the rights probes run on it.
    pub(crate) fn probe(&self) -> String {
        format!("{}probe:absent", self.prefix)
    }

    /// A payload stored out of the stream (over [`crate::wire::BLOB_FROM`] bytes).
    pub(crate) fn blob(&self, task: &str, what: &str) -> String {
        format!("{}blob:{task}:{what}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_shares_the_queue_hash_tag() {
        let k = Keys::new("jobs").unwrap();
        for key in [
            k.tasks(),
            k.running(),
            k.reply("c1"),
            k.client("c1"),
            k.cancel("c1:7"),
            k.control("a1"),
            k.blob("c1:7", "arg"),
        ] {
            assert!(key.starts_with("fp:{jobs}:"), "{key}");
        }
    }

    #[test]
    fn bad_queue_names_are_refused() {
        for bad in ["", "a{b", "a}b", "a b", "a\nb"] {
            assert!(Keys::new(bad).is_err(), "{bad:?}");
        }
    }
}
