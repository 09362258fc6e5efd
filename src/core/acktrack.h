/* Ack tracker: which records of one ordered source (a Kafka partition) are finished.
 *
 * Records enter in source order (sl_acktrack_add) and finish in any order (sl_acktrack_done):
 * several bulk requests are in flight and retries reorder them. The tracker exposes the
 * contiguous finished prefix: `commit_next` is 1 + the offset of the last record of the longest
 * prefix whose records are all finished, i.e. the offset Kafka should store.
 *
 * Invariants:
 *  1. commit_next never passes an unfinished record (at-least-once).
 *  2. commit_next never decreases.
 *  3. A record finishes once; a second done() for the same seq is a bug (asserted).
 *  4. After sl_acktrack_revoke the owner stops adding; the tracker lives until its last pending
 *     record finishes (records in flight still point at it), then frees itself.
 *
 * Records are identified by a per-tracker sequence number, so done() is O(1): the pending
 * records sit in a ring indexed by seq - base_seq. */
#ifndef SL_ACKTRACK_H
#define SL_ACKTRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_acktrack;
struct sl_budget;

#define SL_ACKTRACK_NOTE_MAX 200

/* Called when commit_next moved forward (not when revoked). */
typedef void (*sl_acktrack_advance_cb)(struct sl_acktrack *t, int64_t commit_next, void *owner);

struct sl_acktrack {
    /* read-only for owners */
    int64_t commit_next; /* -1 until the first record finishes */
    uint32_t pending;    /* records added and not yet finished */
    bool revoked;
    void *owner;
    /* private */
    sl_acktrack_advance_cb on_advance;
    uint64_t base_seq; /* seq of ring[head] */
    uint32_t head, cap;
    int64_t *offsets; /* ring of offsets; done records are marked by the done bitmap */
    uint8_t *done;
    struct sl_budget *budget; /* the ring is charged here, if set */
    size_t charged;
    /* why the record at note_seq has not finished yet (the lowest seq noted wins) */
    uint64_t note_seq;
    bool has_note;
    char note[SL_ACKTRACK_NOTE_MAX];
    struct sl_acktrack *live_prev, *live_next; /* every tracker not yet freed (free_all) */
};

struct sl_acktrack *sl_acktrack_new(void *owner, sl_acktrack_advance_cb cb);
/* Registers the next record of the source. Offsets must increase. Returns its seq. Returns
 * UINT64_MAX if the ring could not grow (out of memory); the caller must then not consume. */
uint64_t sl_acktrack_add(struct sl_acktrack *t, int64_t offset);
/* Marks seq finished. May free the tracker (if revoked and this was the last pending record):
 * the caller must not touch t afterwards. */
void sl_acktrack_done(struct sl_acktrack *t, uint64_t seq);
/* The owner gives the tracker up; frees it now if nothing is pending. */
void sl_acktrack_revoke(struct sl_acktrack *t);
/* At exit, once nothing can finish a record any more (the outputs are destroyed): frees every
 * tracker still alive, revoked ones whose records never finished included. */
void sl_acktrack_free_all(void);
/* Bytes of memory the tracker holds. */
size_t sl_acktrack_bytes(const struct sl_acktrack *t);
/* Charges the tracker's memory to b from now on, as its ring grows and shrinks (the ring shrinks
 * again once its finished prefix leaves it mostly empty), and releases it when the tracker is
 * freed. One record that never finishes keeps every record behind it in the ring: 9 bytes each,
 * however many finish. b must outlive the tracker. */
void sl_acktrack_set_budget(struct sl_acktrack *t, struct sl_budget *b);
/* The offset of the oldest unfinished record (the one the commit waits on), or -1 if none. */
int64_t sl_acktrack_head_offset(const struct sl_acktrack *t);
/* Records why seq has not finished (an output's retry: "HTTP 403 security_exception: ..."). Kept
 * for the oldest record noted, so that the head's reason is at hand. */
void sl_acktrack_note(struct sl_acktrack *t, uint64_t seq, const char *why);
/* The note of the oldest unfinished record, or NULL if it has none. */
const char *sl_acktrack_head_note(const struct sl_acktrack *t);

#endif
