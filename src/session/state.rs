//! State a filter keeps for a whole connection, beside its per-message locals.

use std::any::{Any, TypeId};
use std::fmt;

/// Values of any type, one per type, kept for the life of a connection (libmilter's
/// `smfi_setpriv`, pymilter's object per connection). Dropped when the connection ends, so
/// a `Drop` impl is the close hook.
#[derive(Default)]
pub(crate) struct ConnectionState {
    values: Vec<(TypeId, Box<dyn Any + Send>)>,
}

impl ConnectionState {
    /// The value of type `T`, made with `T::default()` on first use.
    pub(crate) fn get_or_default<T: Default + Send + 'static>(&mut self) -> &mut T {
        let id = TypeId::of::<T>();
        let index = if let Some(index) = self.values.iter().position(|(t, _)| *t == id) {
            index
        } else {
            self.values.push((id, Box::new(T::default())));
            self.values.len() - 1
        };
        self.values
            .get_mut(index)
            .and_then(|(_, value)| value.downcast_mut::<T>())
            .unwrap_or_else(|| unreachable!("stored under its own TypeId"))
    }
}

impl fmt::Debug for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionState")
            .field("values", &self.values.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectionState;

    #[test]
    fn one_value_per_type_kept_between_uses() {
        let mut state = ConnectionState::default();
        *state.get_or_default::<u32>() += 3;
        state.get_or_default::<String>().push('x');
        *state.get_or_default::<u32>() += 4;
        assert_eq!(*state.get_or_default::<u32>(), 7);
        assert_eq!(state.get_or_default::<String>(), "x");
    }
}
