package relay_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testwait"
	"github.com/nanodems/connector/rtsp/rtsptest"
)

// recorder is an ffmpeg recording an RTSP URL to a file, as a VMS does.
type recorder struct {
	file string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  strings.Builder
}

func startRecorder(t *testing.T, ff, u, file string) *recorder {
	t.Helper()
	r := &recorder{file: file, done: make(chan struct{})}
	r.cmd = exec.Command(ff, "-hide_banner", "-nostdin", "-loglevel", "warning", "-rtsp_transport", "tcp", "-i", u,
		"-c", "copy", "-f", "mpegts", "-flush_packets", "1", file)
	r.cmd.Stdout, r.cmd.Stderr = &r.log, &r.log
	must(t, r.cmd.Start())
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.done
	})
	return r
}

func (r *recorder) size() int64 {
	fi, err := os.Stat(r.file)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (r *recorder) running() error {
	select {
	case <-r.done:
		return fmt.Errorf("ffmpeg ended (%v): %s", r.err, r.log.String())
	default:
		return nil
	}
}

// waitGrowth waits until every recorder is running and its file grew by
// at least n bytes from from[i].
func waitGrowth(t *testing.T, recs []*recorder, from []int64, n int64, what string) {
	t.Helper()
	if err := testwait.Until(60*time.Second, func() error {
		for i, r := range recs {
			if err := r.running(); err != nil {
				return fmt.Errorf("recorder %d: %v", i, err)
			}
			if got := r.size() - from[i]; got < n {
				return fmt.Errorf("recorder %d grew %d bytes, want %d", i, got, n)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func sizes(recs []*recorder) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.size()
	}
	return out
}

// probeVideo decodes a recording's video with ffprobe and returns the
// number of frames and the presentation times of its packets, sorted.
func probeVideo(t *testing.T, file string) (frames int, pts []float64) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", file, err, out)
	}
	frames, err = strconv.Atoi(strings.TrimSpace(strings.Split(string(out), "\n")[0]))
	if err != nil {
		t.Fatalf("ffprobe %s: frames %q", file, out)
	}
	out, err = exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "packet=pts_time", "-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s packets: %v", file, err)
	}
	for _, l := range strings.Fields(string(out)) {
		if v, err := strconv.ParseFloat(strings.Trim(l, ","), 64); err == nil {
			pts = append(pts, v)
		}
	}
	sort.Float64s(pts)
	return frames, pts
}

// maxJump is the largest step between consecutive sorted times.
func maxJump(pts []float64) float64 {
	m := 0.0
	for i := 1; i < len(pts); i++ {
		m = max(m, pts[i]-pts[i-1])
	}
	return m
}

// TestRTSPRecordersSurviveReconnects: five ffmpeg recorders of one
// camera through the gateway keep recording across an agent restart and,
// separately, a camera restart on the same port; their files play, with
// frames decoded after each gap, and the gap is in the recording as a
// timestamp step (logged: the measured gap).
func TestRTSPRecordersSurviveReconnects(t *testing.T) {
	ff, err := exec.LookPath("ffmpeg")
	if err == nil {
		_, err = exec.LookPath("ffprobe")
	}
	if err != nil {
		if ciRequired() {
			t.Fatal("ffmpeg/ffprobe are not installed (.ci/run installs them)")
		}
		t.Skip("ffmpeg/ffprobe are not installed")
	}
	d := startDemo(t)
	opts := rtsptest.Options{User: rtspUser, Pass: rtspPass}
	cam, h := rtspCamera(t, d, opts, true)
	u := mintRTSP(t, d, demo.Bearer(d.Info.Token), h, "/live", 0)
	dir := t.TempDir()
	var recs []*recorder
	for i := range 5 {
		recs = append(recs, startRecorder(t, ff, u, filepath.Join(dir, fmt.Sprintf("rec%d.ts", i))))
	}
	waitGrowth(t, recs, make([]int64, len(recs)), 64<<10, "before the restarts")

	// (a) The agent restarts: its session with the relay ends, the relay
	// answers "agent offline" until the same agent is back.
	from := sizes(recs)
	stopped := time.Now()
	d.StopAgent()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(t, d.StartAgent(ctx))
	t.Logf("agent restart: down for %v", time.Since(stopped).Round(time.Millisecond))
	waitGrowth(t, recs, from, 64<<10, "after the agent restart")
	framesA := make([]int, len(recs))
	for i, r := range recs {
		framesA[i], _ = probeVideo(t, r.file)
	}

	// (b) The camera restarts on the same port, numbering from zero.
	from = sizes(recs)
	cam.Close()
	opts.Addr = cam.Addr
	cam2, err := rtsptest.Start(opts)
	must(t, err)
	t.Cleanup(cam2.Close)
	waitGrowth(t, recs, from, 64<<10, "after the camera restart")

	for i, r := range recs {
		must(t, r.running())
		r.cmd.Process.Signal(syscall.SIGINT) // ffmpeg finishes its file
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("recorder %d did not stop", i)
		}
		frames, pts := probeVideo(t, r.file)
		if frames <= framesA[i] {
			t.Fatalf("recorder %d: %d frames decoded in all, %d after the agent restart: none after the camera restart", i, frames, framesA[i])
		}
		// Continuous timestamps: the two gaps are the largest steps; a
		// camera restart's timestamps from zero, passed through, would
		// make a step of the stream's age or more.
		if j := maxJump(pts); j > 20 {
			t.Fatalf("recorder %d: a timestamp step of %.1f s", i, j)
		}
		var steps []float64
		for k := 1; k < len(pts); k++ {
			if s := pts[k] - pts[k-1]; s > 0.2 {
				steps = append(steps, s)
			}
		}
		t.Logf("recorder %d: %d frames (%d after the agent restart), gaps in the recording %.2f s", i, frames, framesA[i], steps)
	}
}
