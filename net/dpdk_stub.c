/*
 * dpdk_stub.c — the DPDK source of weir/flows.h in a build without DPDK
 * (-Ddpdk=disabled or no libdpdk-dev): every call says so.
 */
#include <errno.h>

#include "core/error.h"
#include "weir/flows.h"

#define NO_DPDK "--dpdk: this weir was built without DPDK (-Ddpdk=disabled " \
		"or libdpdk-dev missing)"

int weir_dpdk_available(void)
{
	return 0;
}

int weir_dpdk_eal_init(const char *eal_args)
{
	(void)eal_args;
	return wr_error(-ENOTSUP, NO_DPDK);
}

void weir_dpdk_eal_cleanup(void)
{
}

int weir_dpdk_source_open(const struct weir_dpdk_source_config *cfg,
			  struct weir_dpdk_source **out)
{
	(void)cfg;
	(void)out;
	return wr_error(-ENOTSUP, NO_DPDK);
}

int weir_dpdk_source_add(struct weir_pipeline *p, struct weir_dpdk_source *s,
			 struct weir_stream **out)
{
	(void)p;
	(void)s;
	(void)out;
	return wr_error(-ENOTSUP, NO_DPDK);
}

void weir_dpdk_source_stop(struct weir_dpdk_source *s)
{
	(void)s;
}

uint64_t weir_dpdk_source_progress(const struct weir_dpdk_source *s)
{
	(void)s;
	return 0;
}

uint64_t weir_dpdk_source_malformed(const struct weir_dpdk_source *s)
{
	(void)s;
	return 0;
}

void weir_dpdk_source_counters(const struct weir_dpdk_source *s,
			       struct weir_flow_counters *out)
{
	(void)s;
	*out = (struct weir_flow_counters){ 0 };
}

void weir_dpdk_source_stats(const struct weir_dpdk_source *s,
			    struct weir_dpdk_stats *out)
{
	(void)s;
	*out = (struct weir_dpdk_stats){ 0 };
}

void weir_dpdk_source_close(struct weir_dpdk_source *s)
{
	(void)s;
}
