package rallypoint.peer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * The benchmark harness behind {@code scripts/peer.sh drain}: runs one stage of the peer as its
 * own JVM until the stage's output topic (the journal for intake, peer.out for fold) holds
 * {@code --expect} more committed records than when it started, stops it, and prints one JSON
 * line on stdout:
 *
 * <pre>{"stage":..,"events":N,"seconds":..,"events_per_s":..,"steady_events_per_s":..,"cpu_seconds":..,"wall_seconds":..}</pre>
 *
 * <ul>
 *   <li>Records are counted by a {@code read_committed} consumer of the output, so an aborted
 *       or still open transaction never counts, and transaction markers (which take offsets)
 *       do not either.</li>
 *   <li>{@code seconds}/{@code events_per_s}: from the first committed output record seen to the
 *       N-th, the records of that first batch not counted (as Rallypoint's e2e bench measures its
 *       maximum, from first to last), so JVM start, group join and state restore are left out.
 *       {@code wall_seconds} is from launch to the N-th record.</li>
 *   <li>{@code cpu_seconds}: the peer JVM's user+system CPU from launch to the N-th record
 *       ({@code /proc/<pid>/stat}), so this harness's own consumer is not in it.</li>
 * </ul>
 *
 * Gives up (exit 1) after {@code --timeout} seconds, when no output arrives for PEER_IDLE
 * seconds (default 60; counted from the launch, then from the last output), or when the peer
 * exits by itself.
 */
public final class Drain {
    public static void main(String[] args) throws Exception {
        Peer.Options o = null;
        try {
            o = Peer.Options.parse(args);
            if (o.stage.equals("all") || o.expect <= 0) fail("drain needs --stage intake|fold and --expect N > 0");
            Peer.ensureTopics(o);
        } catch (IllegalArgumentException | IllegalStateException e) {
            fail(e.getMessage());
        }
        long idleSeconds = Long.parseLong(System.getenv().getOrDefault("PEER_IDLE", "60"));
        long clkTck = Long.parseLong(System.getenv().getOrDefault("PEER_CLK_TCK", "100"));
        String counted = o.stage.equals("intake") ? o.journal() : o.out();

        try (KafkaConsumer<byte[], byte[]> consumer = committedReader(o.bootstrap)) {
            // Every partition of the counted topic (and, for intake, the dead letters, reported).
            List<TopicPartition> parts = new ArrayList<>();
            for (String topic : o.stage.equals("intake") ? List.of(counted, o.dlq()) : List.of(counted)) {
                consumer.partitionsFor(topic).forEach(p -> parts.add(new TopicPartition(topic, p.partition())));
            }
            consumer.assign(parts);
            // With read_committed, the end offsets are the last stable offsets: what is committed.
            Map<TopicPartition, Long> start = consumer.endOffsets(parts);
            start.forEach(consumer::seek);
            log("counting committed records of " + counted + " from " + start);

            Process peer = launch(o);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> stop(peer))); // e.g. an outer timeout
            long launched = System.nanoTime();
            long deadline = launched + TimeUnit.SECONDS.toNanos(o.timeoutSeconds);
            long n = 0, deadLetters = 0, firstAt = 0, firstN = 0, lastAt = launched, seenBefore = 0, lastLog = launched;
            long halfAt = 0, halfN = 0; // the second half, once the JIT has compiled the hot paths
            while (n < o.expect) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(100))) {
                    if (r.topic().equals(counted)) n++; else deadLetters++;
                }
                long now = System.nanoTime();
                if (n > 0 && firstAt == 0) {
                    firstAt = now;
                    firstN = n;
                    log(String.format(Locale.ROOT, "first output after %.1f s", secs(now - launched)));
                }
                if (n >= o.expect / 2 && halfAt == 0) {
                    halfAt = now;
                    halfN = n;
                }
                if (n + deadLetters > seenBefore) { // progress, for the idle bound
                    lastAt = now;
                    seenBefore = n + deadLetters;
                }
                if (now - lastLog > TimeUnit.SECONDS.toNanos(5)) {
                    log(n + " of " + o.expect + (deadLetters > 0 ? ", dead letters " + deadLetters : ""));
                    lastLog = now;
                }
                if (n >= o.expect) break;
                String why = null;
                if (!peer.isAlive()) why = "the peer exited with code " + peer.exitValue();
                else if (now > deadline) why = "timed out after " + o.timeoutSeconds + " s (PEER_TIMEOUT)";
                else if (now - lastAt > TimeUnit.SECONDS.toNanos(idleSeconds)) {
                    why = "no new output for " + idleSeconds + " s (PEER_IDLE; a stage that already"
                            + " drained its input under this --app-id has nothing left to do)";
                }
                if (why != null) {
                    stop(peer);
                    fail(why + ": " + counted + " got " + n + " of the " + o.expect + " records expected"
                            + (deadLetters > 0 ? " (and " + deadLetters + " dead letters)" : ""));
                }
            }
            long done = System.nanoTime();
            double cpu = cpuSeconds(peer.pid(), clkTck);
            stop(peer);
            if (deadLetters > 0) log(deadLetters + " dead letters in " + o.dlq());
            if (n > o.expect) log((n - o.expect) + " more records than expected were committed already");
            double seconds = secs(done - firstAt);
            double perSecond = (Math.min(n, o.expect) - firstN) / seconds;
            if (firstN >= o.expect) { // all in the first batch seen: no first-to-last span to time
                seconds = secs(done - launched);
                perSecond = o.expect / seconds;
            }
            // The JVM compiles its hot paths while it works: the second half's rate is the
            // warm one, for a comparison that does not count the JIT against the peer.
            double steady = halfAt > 0 && done > halfAt && n > halfN
                    ? (Math.min(n, o.expect) - halfN) / secs(done - halfAt) : perSecond;
            System.out.printf(Locale.ROOT,
                    "{\"stage\":\"%s\",\"events\":%d,\"seconds\":%.3f,\"events_per_s\":%.1f,"
                            + "\"steady_events_per_s\":%.1f,\"cpu_seconds\":%.2f,\"wall_seconds\":%.3f}%n",
                    o.stage, o.expect, seconds, perSecond, steady, cpu, secs(done - launched));
        }
    }

    private static KafkaConsumer<byte[], byte[]> committedReader(String bootstrap) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        return new KafkaConsumer<>(p);
    }

    /** The peer in its own JVM (same java, same classpath), its output on our stderr. */
    private static Process launch(Peer.Options o) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(ProcessHandle.current().info().command().orElse("java"));
        String javaOpts = System.getenv().getOrDefault("PEER_JAVA_OPTS", "").trim();
        if (!javaOpts.isEmpty()) cmd.addAll(List.of(javaOpts.split("\\s+")));
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Peer.class.getName()));
        cmd.addAll(o.peerArgs(o.stage));
        log("starting " + String.join(" ", cmd.subList(cmd.size() - o.peerArgs(o.stage).size() - 1, cmd.size())));
        // The peer writes nothing to stdout (it sends System.out to stderr), so stdout stays ours.
        return new ProcessBuilder(cmd).inheritIO().start();
    }

    /** SIGTERM (the peer closes its Streams apps), then SIGKILL if it is not gone in 40 s. */
    private static void stop(Process peer) {
        if (!peer.isAlive()) return;
        peer.destroy();
        try {
            if (!peer.waitFor(40, TimeUnit.SECONDS)) {
                log("the peer did not stop in 40 s; killing it");
                peer.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            peer.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    /** utime + stime of a process, fields 14 and 15 of /proc/PID/stat, in seconds. */
    static double cpuSeconds(long pid, long clkTck) throws IOException {
        String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
        // The command name (field 2) may hold spaces: count fields after its closing ')'.
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / (double) clkTck;
    }

    private static double secs(long nanos) {
        return nanos / 1e9;
    }

    private static void log(String s) {
        System.err.println("peer drain: " + s);
    }

    private static void fail(String s) {
        System.err.println("peer drain: error: " + s);
        System.exit(1);
    }
}
