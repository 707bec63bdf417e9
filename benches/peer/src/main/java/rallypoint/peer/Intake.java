package rallypoint.peer;

import java.nio.charset.StandardCharsets;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.processor.api.RecordMetadata;

/**
 * Stage 1: parses each input record as JSON (Rallypoint's JSON input: a {@code "type"} naming
 * the event, the common fields in {@code "envelope"}), checks that it has a type, an event id
 * and a nation, and that the nation is the topic's. An accepted record goes to the journal as
 * it came (key, value, headers); a rejected one goes to the dead-letter topic as it came, with
 * {@code error.reason}, {@code error.detail} and its source in headers, as Rallypoint's.
 */
final class Intake implements Processor<byte[], byte[], byte[], byte[]> {
    /** Names of the two sinks (see {@link Peer#intake}). */
    static final String JOURNAL = "journal-sink";
    static final String DLQ = "dlq-sink";

    private static final ObjectMapper JSON = new ObjectMapper();
    private final String prefix;
    private ProcessorContext<byte[], byte[]> context;

    Intake(String prefix) {
        this.prefix = prefix;
    }

    @Override
    public void init(ProcessorContext<byte[], byte[]> context) {
        this.context = context;
    }

    @Override
    public void process(Record<byte[], byte[]> record) {
        RecordMetadata source = context.recordMetadata().orElseThrow();
        String reason = null;
        String detail = null;
        JsonNode event = null;
        try {
            event = record.value() == null ? null : JSON.readTree(record.value());
        } catch (JsonProcessingException e) {
            reason = "undecodable";
            detail = "JSON: " + e.getOriginalMessage();
        } catch (java.io.IOException e) {
            reason = "undecodable";
            detail = "JSON: " + e.getMessage();
        }
        if (reason == null && (event == null || !event.isObject())) {
            reason = "undecodable";
            detail = "not a JSON object";
        }
        if (reason == null) {
            String type = text(event, "type");
            String eventId = envelopeText(event, "event_id");
            String nation = envelopeText(event, "nation");
            String topicNation = nationOf(source.topic());
            if (type == null || eventId == null || nation == null) {
                reason = "invalid_field";
                detail = "missing" + (type == null ? " type" : "") + (eventId == null ? " event_id" : "")
                        + (nation == null ? " nation" : "");
            } else if (!nation.equals(topicNation)) {
                reason = "spoofed_nation";
                detail = "event of " + nation + " on " + topicNation + "'s topic";
            }
        }
        if (reason == null) {
            context.forward(record, JOURNAL);
        } else {
            // The original headers, plus the reason and where the record came from.
            Headers h = new RecordHeaders(record.headers().toArray());
            h.add("error.reason", utf8(reason));
            h.add("error.detail", utf8(detail));
            h.add("source.topic", utf8(source.topic()));
            h.add("source.partition", utf8(String.valueOf(source.partition())));
            h.add("source.offset", utf8(String.valueOf(source.offset())));
            context.forward(record.withHeaders(h), DLQ);
        }
    }

    /** The nation in {@code <prefix>rrc.in.<NATION>.<stream>}. */
    private String nationOf(String topic) {
        String rest = topic.substring(prefix.length() + "rrc.in.".length());
        return rest.substring(0, rest.indexOf('.'));
    }

    /** A field of the envelope; a flat record (the field at the top level) is taken too. */
    static String envelopeText(JsonNode event, String field) {
        JsonNode envelope = event.get("envelope");
        String v = envelope != null && envelope.isObject() ? text(envelope, field) : null;
        return v != null ? v : text(event, field);
    }

    /** A non-empty string field, or null. */
    static String text(JsonNode node, String field) {
        JsonNode v = node.get(field);
        return v != null && v.isTextual() && !v.asText().isEmpty() ? v.asText() : null;
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
