"""Running the code location as a service: submitting runs to the instance, the daemon that executes
them, and waiting on them with progress."""
