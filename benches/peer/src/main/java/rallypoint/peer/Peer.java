package rallypoint.peer;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.state.Stores;

/**
 * A Kafka Streams peer of Rallypoint's two stages, for side-by-side benchmarks:
 *
 * <pre>
 * rrc.in.NATION.incidents|offers|responses|sightings → intake → peer.journal (1 partition)
 *                                                      rejected → peer.dlq
 * peer.journal → fold (dedup on event_id, latest event per key, count per type) → peer.out
 * </pre>
 *
 * Both stages run exactly_once_v2 with default (RocksDB, changelogged) stores, each stage as
 * its own Streams application ({@code <app-id>-intake}, {@code <app-id>-fold}), so that a
 * benchmark can fill the journal first and then time the fold alone.
 *
 * <p>Usage: {@code java -cp 'peer.jar:lib/*' rallypoint.peer.Peer [options]}; see {@link
 * Options}. It runs until SIGTERM/SIGINT, or until a stage fails (exit 1).
 */
public final class Peer {
    static final List<String> STREAMS = List.of("incidents", "offers", "responses", "sightings");

    /** Command-line options, each with an environment fallback. */
    static final class Options {
        String bootstrap = env("PEER_BOOTSTRAP", "127.0.0.1:9092");
        /** As Rallypoint's kafka.namespace: non-empty, it prefixes every topic with "NS.". */
        String namespace = env("PEER_NAMESPACE", "");
        List<String> nations = split(env("PEER_NATIONS", "EST,LVA,LTU,POL,DEU,FRA,NLD,FIN"));
        String appId = env("PEER_APP_ID", "");
        String stateDir = env("PEER_STATE_DIR", System.getProperty("java.io.tmpdir") + "/rallypoint-peer");
        String stage = env("PEER_STAGE", "all");
        int threads = Integer.parseInt(env("PEER_THREADS", "1"));
        /** Drain only: records to wait for, and the bound in seconds. */
        long expect = -1;
        long timeoutSeconds = Long.parseLong(env("PEER_TIMEOUT", "600"));

        static Options parse(String[] args) {
            Options o = new Options();
            for (int i = 0; i < args.length; i++) {
                String flag = args[i];
                if (i + 1 >= args.length) throw new IllegalArgumentException("missing value after " + flag);
                String v = args[++i];
                try {
                    o.set(flag, v);
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException(flag + " needs a whole number, not " + v);
                }
            }
            if (!Set.of("intake", "fold", "all").contains(o.stage)) {
                throw new IllegalArgumentException("--stage must be intake, fold or all, not " + o.stage);
            }
            if (o.nations.isEmpty()) throw new IllegalArgumentException("--nations is empty");
            if (o.appId.isEmpty()) o.appId = o.prefix() + "peer";
            return o;
        }

        private void set(String flag, String v) {
            switch (flag) {
                case "--bootstrap" -> bootstrap = v;
                case "--namespace" -> namespace = v;
                case "--nations" -> nations = split(v);
                case "--app-id" -> appId = v;
                case "--state-dir" -> stateDir = v;
                case "--stage" -> stage = v;
                case "--threads" -> threads = Integer.parseInt(v);
                case "--expect" -> expect = Long.parseLong(v);
                case "--timeout" -> timeoutSeconds = Long.parseLong(v);
                default -> throw new IllegalArgumentException("unknown option " + flag);
            }
        }

        /** The argument list that {@link #parse} reads back (without the drain's options). */
        List<String> peerArgs(String stage) {
            return List.of("--bootstrap", bootstrap, "--namespace", namespace,
                    "--nations", String.join(",", nations), "--app-id", appId,
                    "--state-dir", stateDir, "--stage", stage, "--threads", String.valueOf(threads));
        }

        String prefix() {
            return namespace.isEmpty() || namespace.endsWith(".") ? namespace : namespace + ".";
        }

        String journal() { return prefix() + "peer.journal"; }
        String out() { return prefix() + "peer.out"; }
        String dlq() { return prefix() + "peer.dlq"; }

        List<String> inputs() {
            List<String> topics = new ArrayList<>();
            for (String nation : nations) {
                for (String stream : STREAMS) topics.add(prefix() + "rrc.in." + nation + "." + stream);
            }
            return topics;
        }

        private static String env(String name, String fallback) {
            String v = System.getenv(name);
            return v == null || v.isEmpty() ? fallback : v;
        }

        private static List<String> split(String s) {
            return java.util.Arrays.stream(s.split(",")).map(String::trim)
                    .filter(x -> !x.isEmpty()).collect(Collectors.toList());
        }
    }

    public static void main(String[] args) throws Exception {
        // stdout is the drain's (one JSON line); everything the peer says goes to stderr.
        System.setOut(System.err);
        Options o;
        try {
            o = Options.parse(args);
            ensureTopics(o);
        } catch (IllegalArgumentException | IllegalStateException e) {
            System.err.println("peer: error: " + e.getMessage());
            System.exit(2);
            return;
        }

        Map<String, KafkaStreams> stages = new LinkedHashMap<>();
        if (!o.stage.equals("fold")) stages.put("intake", new KafkaStreams(intake(o), config(o, "intake")));
        if (!o.stage.equals("intake")) stages.put("fold", new KafkaStreams(fold(o), config(o, "fold")));
        Collection<KafkaStreams> apps = stages.values();

        // Ends main when a stage stops on its own (an error) or at SIGTERM/SIGINT.
        CountDownLatch done = new CountDownLatch(1);
        int[] exit = {0};
        stages.forEach((stage, app) -> {
            app.setUncaughtExceptionHandler(e -> {
                System.err.println("peer: " + stage + " failed: " + e);
                exit[0] = 1;
                return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
            });
            app.setStateListener((now, before) -> {
                System.err.println("peer: " + stage + " " + before + " -> " + now);
                if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.PENDING_SHUTDOWN) done.countDown();
            });
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            done.countDown();
            for (KafkaStreams app : apps) app.close(Duration.ofSeconds(30));
        }));
        System.err.println("peer: stage " + o.stage + ", application " + o.appId + ", state " + o.stateDir);
        for (KafkaStreams app : apps) app.start();
        done.await();
        for (KafkaStreams app : apps) app.close(Duration.ofSeconds(30));
        System.exit(exit[0]);
    }

    /** Stage 1: validate each input record, then journal it or dead-letter it. */
    static Topology intake(Options o) {
        Topology t = new Topology(new TopologyConfig(new StreamsConfig(config(o, "intake"))));
        t.addSource("inputs", o.inputs().toArray(String[]::new));
        t.addProcessor("validate", () -> new Intake(o.prefix()), "inputs");
        t.addSink(Intake.JOURNAL, o.journal(), "validate");
        t.addSink(Intake.DLQ, o.dlq(), "validate");
        return t;
    }

    /** Stage 2: fold the journal into three persistent stores and emit one record per event. */
    static Topology fold(Options o) {
        Topology t = new Topology(new TopologyConfig(new StreamsConfig(config(o, "fold"))));
        t.addSource("journal", o.journal());
        t.addProcessor("fold", Fold::new, "journal");
        // Persistent RocksDB stores; a changelog topic backs each one (logging is on by default).
        t.addStateStore(Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(Fold.SEEN), Serdes.String(), Serdes.Long()), "fold");
        t.addStateStore(Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(Fold.ENTITIES), Serdes.Bytes(), Serdes.ByteArray()), "fold");
        t.addStateStore(Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(Fold.COUNTS), Serdes.String(), Serdes.Long()), "fold");
        t.addSink("out", o.out(), "fold");
        return t;
    }

    static Properties config(Options o, String stage) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, o.appId + "-" + stage);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, o.bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.STATE_DIR_CONFIG, o.stateDir);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, o.threads);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
        // commit.interval.ms stays at the exactly-once default, 100 ms, as Rallypoint's.
        return p;
    }

    /**
     * Creates the peer's own topics when missing. The input topics are Rallypoint's: a missing
     * one stops the intake here, with a clear message, rather than in Streams' rebalance.
     */
    static void ensureTopics(Options o) throws InterruptedException, ExecutionException {
        Map<String, Object> conf = new HashMap<>();
        conf.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, o.bootstrap);
        try (Admin admin = Admin.create(conf)) {
            Set<String> existing = admin.listTopics().names().get(30, TimeUnit.SECONDS);
            if (!o.stage.equals("fold")) {
                List<String> absent = o.inputs().stream().filter(t -> !existing.contains(t)).toList();
                if (!absent.isEmpty()) {
                    throw new IllegalStateException("missing input topics " + absent
                            + " (create them with `rallypoint topics create`)");
                }
            }
            List<NewTopic> missing = new ArrayList<>();
            for (String name : List.of(o.journal(), o.out(), o.dlq())) {
                // One partition each: the journal must be in total order; the others stay small.
                if (!existing.contains(name)) missing.add(new NewTopic(name, Optional.of(1), Optional.empty()));
            }
            if (missing.isEmpty()) return;
            try {
                admin.createTopics(missing).all().get(30, TimeUnit.SECONDS);
                System.err.println("peer: created " + missing.stream().map(NewTopic::name).toList());
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) throw e; // another process won the race
            }
        } catch (java.util.concurrent.TimeoutException e) {
            throw new IllegalStateException("no answer from the broker at " + o.bootstrap, e);
        }
    }
}
