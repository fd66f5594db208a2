/*
 * The pod sandbox process of localhost/ecom-pause (built by scripts/images.sh pause).
 *
 * It holds the pod's namespaces open and does nothing else: SIGINT or SIGTERM ends it with
 * status 0, exited children are reaped (it is PID 1 of the pod when the PID namespace is
 * shared), and otherwise it sleeps in pause() forever. `-v` prints its version.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ECOM_PAUSE_VERSION "3.10"

static void say(int fd, const char *text) {
  ssize_t ignored = write(fd, text, strlen(text));
  (void)ignored;
}

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  int saved = errno;
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

static void on(int sig, void (*handler)(int), int flags) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = handler;
  action.sa_flags = flags;
  sigemptyset(&action.sa_mask);
  if (sigaction(sig, &action, NULL) != 0) {
    say(2, "ecom-pause: sigaction failed\n");
    _exit(2);
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    say(1, "ecom-pause " ECOM_PAUSE_VERSION "\n");
    return 0;
  }
  if (getpid() != 1) {
    say(2, "ecom-pause: warning: not running as PID 1\n");
  }
  on(SIGINT, stop, 0);
  on(SIGTERM, stop, 0);
  on(SIGCHLD, reap, SA_NOCLDSTOP | SA_RESTART);
  for (;;) {
    pause();
  }
}
