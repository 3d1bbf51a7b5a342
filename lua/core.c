/*
 * core.c - provium.core: the raw file I/O the Lua library needs.
 *
 * Lua's io library is stdio: after a failed write the stream is in an
 * error state and a reply can no longer be read from the same open file,
 * it cannot poll, and it hides errno. A ctl file needs exactly those: write
 * a command, read its reply on the same open file, tell EINVAL from EINTR.
 *
 * One userdata type, "provium.fd", made closed (-1) before the open so a
 * failed open leaves nothing to leak; __gc and __close share one
 * idempotent close (as liolib does). Misuse (a closed fd, bad arguments)
 * raises; failures of the environment return nil, message, errno.
 *
 * EINTR is returned, never retried here: the Lua side retries, which gives
 * the interpreter's SIGINT hook the chance to raise "interrupted!" between
 * tries, so Ctrl-C ends a blocked read at once.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#define FD_META "provium.fd"
#define READ_MAX (1 << 20)

struct pfd {
    int fd;
};

int luaopen_provium_core(lua_State *L);

static int
fail(lua_State *L, const char *what)
{
    int err = errno;

    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, strerror(err));
    lua_pushinteger(L, err);
    return 3;
}

static struct pfd *
check_open(lua_State *L)
{
    struct pfd *p = luaL_checkudata(L, 1, FD_META);

    if (p->fd < 0)
        luaL_error(L, "attempt to use a closed provium fd");
    return p;
}

/* core.open(path, mode): mode is "r", "w" or "rw", plus "n" for
 * O_NONBLOCK. */
static int
core_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *mode = luaL_optstring(L, 2, "r");
    int flags = O_CLOEXEC;
    bool r = strchr(mode, 'r'), w = strchr(mode, 'w');
    struct pfd *p = lua_newuserdatauv(L, sizeof *p, 0);

    p->fd = -1;
    luaL_setmetatable(L, FD_META);
    flags |= r && w ? O_RDWR : w ? O_WRONLY : O_RDONLY;
    if (strchr(mode, 'n'))
        flags |= O_NONBLOCK;
    p->fd = open(path, flags);
    if (p->fd < 0)
        return fail(L, path);
    return 1;
}

/* fd:read(n) -> string ("" at end of file) | nil, msg, errno */
static int
fd_read(lua_State *L)
{
    struct pfd *p = check_open(L);
    lua_Integer n = luaL_optinteger(L, 2, 65536);
    luaL_Buffer b;

    luaL_argcheck(L, n > 0 && n <= READ_MAX, 2, "size out of range");
    char *buf = luaL_buffinitsize(L, &b, (size_t)n);
    ssize_t got = read(p->fd, buf, (size_t)n);
    if (got < 0)
        return fail(L, "read");
    luaL_pushresultsize(&b, (size_t)got);
    return 1;
}

/* fd:write(s) -> bytes written | nil, msg, errno. One write(2): a ctl
 * command must arrive in one write. */
static int
fd_write(lua_State *L)
{
    struct pfd *p = check_open(L);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    ssize_t n = write(p->fd, s, len);

    if (n < 0)
        return fail(L, "write");
    lua_pushinteger(L, n);
    return 1;
}

/* fd:poll(seconds) -> true (readable or hung up) | false (timed out) |
 * nil, msg, errno. A negative timeout waits forever. */
static int
fd_poll(lua_State *L)
{
    struct pfd *p = check_open(L);
    lua_Number secs = luaL_optnumber(L, 2, -1);
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
    int ms = secs < 0 ? -1 : secs > 2e6 ? 2000000000 : (int)(secs * 1000 + 0.999);
    int n = poll(&pfd, 1, ms);

    if (n < 0)
        return fail(L, "poll");
    lua_pushboolean(L, n > 0);
    return 1;
}

static int
fd_fileno(lua_State *L)
{
    lua_pushinteger(L, check_open(L)->fd);
    return 1;
}

/* Idempotent: fd:close(), __close and __gc all end here. */
static int
fd_close(lua_State *L)
{
    struct pfd *p = luaL_checkudata(L, 1, FD_META);

    if (p->fd >= 0) {
        /* Linux releases the descriptor even when close fails. */
        close(p->fd);
        p->fd = -1;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int
fd_tostring(lua_State *L)
{
    struct pfd *p = luaL_checkudata(L, 1, FD_META);

    if (p->fd < 0)
        lua_pushliteral(L, "provium.fd (closed)");
    else
        lua_pushfstring(L, "provium.fd (%d)", p->fd);
    return 1;
}

/* core.now() -> CLOCK_MONOTONIC seconds */
static int
core_now(lua_State *L)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* core.poll({fd, ...}, seconds) -> {i, ...} the 1-based indices of the
 * fds readable or hung up ({} on timeout) | nil, msg, errno. For readers
 * of several streams at once (the CLI's `run`: stdout and stderr as they
 * come). A negative timeout waits forever. */
#define POLL_MAX 64
static int
core_poll(lua_State *L)
{
    struct pollfd pfds[POLL_MAX];
    lua_Number secs = luaL_optnumber(L, 2, -1);
    int ms = secs < 0 ? -1 : secs > 2e6 ? 2000000000 : (int)(secs * 1000 + 0.999);
    lua_Integer n;
    int ready, k = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    n = luaL_len(L, 1);
    luaL_argcheck(L, n > 0 && n <= POLL_MAX, 1, "1 to 64 fds");
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        struct pfd *p = luaL_checkudata(L, -1, FD_META);
        pfds[i] = (struct pollfd){.fd = p->fd, .events = POLLIN};
        lua_pop(L, 1);
    }
    if ((ready = poll(pfds, (nfds_t)n, ms)) < 0)
        return fail(L, "poll");
    lua_createtable(L, ready, 0);
    for (lua_Integer i = 0; i < n; i++) {
        if (pfds[i].revents) {
            lua_pushinteger(L, i + 1);
            lua_rawseti(L, -2, ++k);
        }
    }
    return 1;
}

/* core.listdir(path) -> {name, ...} without . and .. | nil, msg, errno.
 * Lua has no directory listing; `ls streams/` is what the CLI needs. */
static int
core_listdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    DIR *d = opendir(path);
    struct dirent *e;
    int k = 0;

    if (!d)
        return fail(L, path);
    lua_newtable(L);
    errno = 0;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        lua_pushstring(L, e->d_name);
        lua_rawseti(L, -2, ++k);
    }
    if (errno) {
        int err = errno;
        closedir(d);
        errno = err;
        return fail(L, path);
    }
    closedir(d);
    return 1;
}

static const luaL_Reg fd_methods[] = {
    {"read", fd_read},     {"write", fd_write}, {"poll", fd_poll},
    {"fileno", fd_fileno}, {"close", fd_close}, {NULL, NULL},
};

static const luaL_Reg fd_meta[] = {
    {"__gc", fd_close},
    {"__close", fd_close},
    {"__tostring", fd_tostring},
    {NULL, NULL},
};

static const luaL_Reg core_funcs[] = {
    {"open", core_open},
    {"now", core_now},
    {"poll", core_poll},
    {"listdir", core_listdir},
    {NULL, NULL},
};

int
luaopen_provium_core(lua_State *L)
{
    luaL_newmetatable(L, FD_META);
    luaL_setfuncs(L, fd_meta, 0);
    luaL_newlib(L, fd_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, core_funcs);
    lua_pushinteger(L, EINTR);
    lua_setfield(L, -2, "EINTR");
    lua_pushinteger(L, EAGAIN);
    lua_setfield(L, -2, "EAGAIN");
    lua_pushinteger(L, EINVAL);
    lua_setfield(L, -2, "EINVAL");
    lua_pushinteger(L, ENOTCONN);
    lua_setfield(L, -2, "ENOTCONN");
    lua_pushinteger(L, ECONNABORTED);
    lua_setfield(L, -2, "ECONNABORTED");
    lua_pushinteger(L, ENOENT);
    lua_setfield(L, -2, "ENOENT");
    lua_pushinteger(L, EPIPE);
    lua_setfield(L, -2, "EPIPE");
    return 1;
}
