package rallypoint.peer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * Stage 2: folds the journal. A repeated {@code event_id} is dropped (the feed retried);
 * otherwise the event becomes its entity's latest state (keyed by the record key), its type's
 * count goes up by one, and one record {@code {"event_id","type","count"}} goes to the output.
 */
final class Fold implements Processor<byte[], byte[], byte[], byte[]> {
    /** Store names (see {@link Peer#fold}). */
    static final String SEEN = "seen-event-ids";
    static final String ENTITIES = "entities";
    static final String COUNTS = "counts-per-type";

    private static final ObjectMapper JSON = new ObjectMapper();
    private ProcessorContext<byte[], byte[]> context;
    private KeyValueStore<String, Long> seen;
    private KeyValueStore<Bytes, byte[]> entities;
    private KeyValueStore<String, Long> counts;
    private long skipped;

    @Override
    public void init(ProcessorContext<byte[], byte[]> context) {
        this.context = context;
        seen = context.getStateStore(SEEN);
        entities = context.getStateStore(ENTITIES);
        counts = context.getStateStore(COUNTS);
    }

    @Override
    public void process(Record<byte[], byte[]> record) {
        JsonNode event;
        try {
            event = JSON.readTree(record.value());
        } catch (java.io.IOException | IllegalArgumentException e) {
            event = null;
        }
        String eventId = event == null ? null : Intake.envelopeText(event, "event_id");
        String type = event == null ? null : Intake.text(event, "type");
        if (eventId == null || type == null) {
            // Intake let only such records through; one here was written by something else.
            if (skipped++ == 0) System.err.println("peer: fold skips a journal record it cannot read");
            return;
        }
        if (seen.get(eventId) != null) return; // a retry: applied once already
        seen.put(eventId, context.recordMetadata().map(m -> m.offset()).orElse(-1L));
        if (record.key() != null) entities.put(Bytes.wrap(record.key()), record.value());
        Long before = counts.get(type);
        long count = before == null ? 1 : before + 1;
        counts.put(type, count);

        ObjectNode out = JSON.createObjectNode();
        out.put("event_id", eventId);
        out.put("type", type);
        out.put("count", count);
        try {
            context.forward(record.withValue(JSON.writeValueAsBytes(out)));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e); // a flat object of strings and a number
        }
    }
}
