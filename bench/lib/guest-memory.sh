# Sourced by the benchmark scripts. On a VM whose balloon reports free pages to the host
# (virtio-balloon free page reporting), memory the guest frees goes back to the host, and the
# next page-cache page allocated from it faults in from the host on first touch. Measured on the
# 2-vCPU VM of bench/RESULTS.md: 2 GiB written 15 s after deleting a file ran at 0.33-0.43 GB/s;
# written right after the delete, or with reporting held, 3.3-5.4 GB/s. Benchmarks delete their
# data between runs, so each run's produce rate depended on how long ago the last one freed its
# pages. HOLD_GUEST_MEMORY=1 stops the reporting for the script's run (the order is raised past
# the largest free block, where the kernel allows it) and restores it on exit: every run then
# writes into memory the host has already backed, as a long-running broker with a full page
# cache does.
reporting_order=/sys/module/page_reporting/parameters/page_reporting_order
saved_reporting_order=

# Whether a balloon device that can report free pages is bound (the parameter exists without one).
reports_free_pages() {
    [ -r "$reporting_order" ] && compgen -G '/sys/bus/virtio/drivers/virtio_balloon/virtio*' > /dev/null
}

# One line: whether freed guest memory goes back to the host.
guest_memory_state() {
    if reports_free_pages; then
        echo "guest memory: free page reporting from order $(cat "$reporting_order") up${saved_reporting_order:+ (held: was $saved_reporting_order)}"
    else
        echo "guest memory: no free page reporting"
    fi
}

# Raises the reporting order past the largest free block. Kernels whose parameter is capped at
# the largest order (upstream since 6.4) refuse that; then reporting goes on, and this says so.
hold_guest_memory() {
    [ -n "${HOLD_GUEST_MEMORY:-}" ] && reports_free_pages || return 0
    local was
    was=$(cat "$reporting_order")
    if echo 11 2> /dev/null > "$reporting_order" && [ "$(cat "$reporting_order")" = 11 ]; then
        saved_reporting_order=$was
    else
        echo "note: could not hold guest memory (page_reporting_order stays $was): freed memory still goes back to the host" >&2
    fi
}

release_guest_memory() {
    if [ -n "$saved_reporting_order" ]; then
        echo "$saved_reporting_order" > "$reporting_order"
        saved_reporting_order=
    fi
}
