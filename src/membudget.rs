//! A memory budget for work whose size the input decides and no other limit
//! bounds: rendering a template. minijinja's fuel counts instructions, and
//! one instruction can double a string (`{% set a = a ~ a %}`): thirty of
//! them ask for gigabytes before the 16 MiB output cap sees a byte. minijinja
//! has no hook for its string operations, and a Rust allocation cannot fail
//! without aborting the process, so the budget is kept by the allocator:
//!
//! - [`Counting`] is the binary's global allocator (`src/main.rs`): the
//!   system allocator plus, on a thread inside [`limit`], a count of the bytes
//!   that thread holds.
//! - [`limit`] runs a closure with a budget; past it, pake prints what went
//!   wrong and exits with code 2 (bad input). Nothing has been changed on a
//!   cluster at that point: templates are rendered before the first apply.
//!
//! Outside [`limit`] (and in test binaries, which keep the default
//! allocator) nothing is counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// What a thread inside [`limit`] holds and may hold (bytes).
#[derive(Clone, Copy)]
struct Budget {
    held: usize,
    max: usize,
    what: &'static str,
}

thread_local! {
    // `const` and `Copy`: no allocation and no destructor, so the allocator may use it.
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
}

/// Run `f` with at most `max` bytes held by this thread (allocated minus
/// freed since the call). `what` names the work in the error, e.g.
/// `"rendering templates/k8s/deployment.yaml"`.
pub fn limit<T>(max: usize, what: &str, f: impl FnOnce() -> T) -> T {
    // Leaked once per call: a few template names per run.
    let what: &'static str = Box::leak(what.to_string().into_boxed_str());
    let outer = BUDGET.with(|b| b.replace(Some(Budget { held: 0, max, what })));
    let out = f();
    BUDGET.with(|b| b.set(outer));
    out
}

fn charge(n: usize) {
    let _ = BUDGET.try_with(|b| {
        if let Some(mut x) = b.get() {
            x.held = x.held.saturating_add(n);
            if x.held > x.max {
                b.set(None);
                over(x);
            }
            b.set(Some(x));
        }
    });
}

fn credit(n: usize) {
    let _ = BUDGET.try_with(|b| {
        if let Some(mut x) = b.get() {
            x.held = x.held.saturating_sub(n);
            b.set(Some(x));
        }
    });
}

/// Print the error and exit 2, without allocating (we are inside the allocator).
fn over(b: Budget) -> ! {
    let mib = b.max >> 20;
    let mut num = [0u8; 20];
    let mut i = num.len();
    let mut n = mib;
    loop {
        i -= 1;
        num[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let parts: [&[u8]; 5] = [
        b"error: ",
        b.what.as_bytes(),
        b" needs more than ",
        &num[i..],
        b" MiB of memory: a string or list grows without bound (e.g. a chain of `~`, `+` or `*` on strings)\nfix: build large values with a bounded loop, or split the template\n",
    ];
    for p in parts {
        // SAFETY: writing a valid buffer to stderr.
        unsafe { libc::write(2, p.as_ptr().cast(), p.len()) };
    }
    // SAFETY: exits the process without running anything that may allocate.
    unsafe { libc::_exit(crate::ExitCode::Usage.code()) }
}

/// The system allocator, counting for threads inside [`limit`].
pub struct Counting;

// SAFETY: every call is forwarded to `System` unchanged; the counting only
// touches a `const` thread-local `Cell` and never allocates or unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        charge(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        charge(l.size());
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        credit(l.size());
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > l.size() {
            charge(new - l.size());
        } else {
            credit(l.size() - new);
        }
        unsafe { System.realloc(p, l, new) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_limits_restore_the_outer_one() {
        limit(1 << 30, "outer", || {
            limit(1 << 20, "inner", || {
                charge(1000);
                assert_eq!(BUDGET.with(|b| b.get().unwrap().held), 1000);
            });
            assert_eq!(BUDGET.with(|b| b.get().unwrap().what), "outer");
            credit(10);
            assert_eq!(BUDGET.with(|b| b.get().unwrap().held), 0, "never below 0");
        });
        assert!(BUDGET.with(|b| b.get()).is_none());
    }
}
