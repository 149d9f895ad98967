/*
 * webhook.h
 *		Webhook delivery: signing (webhook_sign.c), the address policy
 *		(webhook_address.c), the outbox rows written with completed events
 *		(delivery_outbox.c) and the delivery worker (delivery_worker.c).
 */
#ifndef EL_WEBHOOK_H
#define EL_WEBHOOK_H

#include "postgres.h"

#include <sys/socket.h>

/* Longest HMAC key taken from a whsec_ secret. */
#define EL_WEBHOOK_MAX_KEY 64

/* "v1," + base64 of a SHA-256 HMAC (44) + NUL. */
#define EL_WEBHOOK_SIGNATURE_LEN 48

extern int	el_webhook_secret_key(const char *secret, unsigned char *key);
extern bool el_webhook_sign(const char *secret, const char *id, int64 timestamp,
							const char *body, size_t body_len, char *out);

/* webhook_address.c */
extern void el_webhook_address_define_gucs(void);
extern bool el_webhook_address_allowed(const struct sockaddr *addr, const char **why);

/* delivery_outbox.c: called by the processing core for completed events */
extern void el_enqueue_deliveries(Datum completed_event_ids);

/* delivery_worker.c */
extern void el_delivery_init(void);
extern void el_delivery_shmem_init(void);
extern void el_delivery_supervise(Oid dboid, long *timeout);
extern PGDLLEXPORT void el_delivery_worker_main(Datum arg);

/* The delivery worker's counters since it started (GET /metrics). */
typedef struct ElDeliveryCounters
{
	uint64		sent;
	uint64		delivered;
	uint64		failed;
	uint64		refused;
	int			in_flight;
} ElDeliveryCounters;

extern bool el_delivery_counters(ElDeliveryCounters *counters);

#endif							/* EL_WEBHOOK_H */
