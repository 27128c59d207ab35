/*
 * net/dpdk.h — shared inside net/ between dpdk_eal.c and dpdk_source.c.
 */
#ifndef WR_NET_DPDK_H
#define WR_NET_DPDK_H

#include <stddef.h>

/* The first line of the EAL's initialisation log that reports a failure
 * (a device that did not probe, say), or "" — for the "no ports" message.
 * Valid until the process ends. */
const char *wr_dpdk_eal_complaint(void);

#endif
