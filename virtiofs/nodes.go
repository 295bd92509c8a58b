package virtiofs

import (
	"sync"

	"golang.org/x/sys/unix"
)

// rootID is the node id FUSE gives the share's root.
const rootID = 1

type inodeKey struct{ dev, ino uint64 }

// node is an inode the guest knows: an O_PATH descriptor and the number of
// lookups the guest has not forgotten yet.
type node struct {
	id      uint64
	fd      int
	key     inodeKey
	mode    uint32
	nlookup uint64
}

// nodeTable maps the server's node ids to open inodes. Ids are never
// reused, so a stale id from the guest finds nothing rather than another
// file; a second lookup of the same inode returns the same id.
type nodeTable struct {
	mu     sync.Mutex
	byID   map[uint64]*node
	byKey  map[inodeKey]*node
	nextID uint64
	maxFDs int
}

func newNodeTable(rootFD int, st unix.Stat_t, maxFDs int) *nodeTable {
	t := &nodeTable{byID: map[uint64]*node{}, byKey: map[inodeKey]*node{}, nextID: rootID + 1, maxFDs: maxFDs}
	root := &node{id: rootID, fd: rootFD, key: inodeKey{st.Dev, st.Ino}, mode: st.Mode, nlookup: 1}
	t.byID[rootID], t.byKey[root.key] = root, root
	return t
}

func (t *nodeTable) get(id uint64) *node {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byID[id]
}

// add registers a looked-up inode (taking ownership of fd) and counts the
// lookup. It returns nil, with fd closed, when the table is full: the
// guest cannot make the VMM hold unbounded descriptors.
func (t *nodeTable) add(fd int, st unix.Stat_t) *node {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := inodeKey{st.Dev, st.Ino}
	if n, ok := t.byKey[key]; ok {
		unix.Close(fd)
		n.nlookup++
		return n
	}
	if len(t.byID) >= t.maxFDs {
		unix.Close(fd)
		return nil
	}
	n := &node{id: t.nextID, fd: fd, key: key, mode: st.Mode, nlookup: 1}
	t.nextID++
	t.byID[n.id], t.byKey[key] = n, n
	return n
}

// forget drops count lookups (saturating at zero) and closes the inode
// when none are left. The root is never forgotten.
func (t *nodeTable) forget(id, count uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.byID[id]
	if !ok || id == rootID {
		return
	}
	if count >= n.nlookup {
		n.nlookup = 0
	} else {
		n.nlookup -= count
	}
	if n.nlookup == 0 {
		delete(t.byID, id)
		delete(t.byKey, n.key)
		unix.Close(n.fd)
	}
}

func (t *nodeTable) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, n := range t.byID {
		unix.Close(n.fd)
		delete(t.byID, id)
	}
	t.byKey = map[inodeKey]*node{}
}
